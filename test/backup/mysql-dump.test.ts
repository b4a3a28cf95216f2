import test from 'ava';
import { MysqlDumpCounter } from '../../src/backup/mysql-dump.js';

// A dump as MariaDB 10.11's mariadb-dump writes it (one row tuple per line), with what could
// fool a counter: strings holding parentheses, semicolons, quotes ('' and \'), backslashes and
// escaped newlines; a binary value that is not UTF-8; a table with no rows; a trigger and a
// procedure whose bodies hold INSERT lines (and CREATE TABLE lines: an app's own text, no table
// of the dump — after a `DELIMITER ;` line inside a string or a comment of the body too); a view's
// stand-in; a table name with a backtick.
const DUMP = Buffer.concat([
  Buffer.from(`/*M!999999\\- enable the sandbox mode */
-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)
--
-- Host: localhost    Database: shop
-- ------------------------------------------------------

DROP TABLE IF EXISTS \`posts\`;
CREATE TABLE \`posts\` (
  \`n\` int(11) NOT NULL AUTO_INCREMENT,
  \`body\` text DEFAULT NULL,
  PRIMARY KEY (\`n\`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

LOCK TABLES \`posts\` WRITE;
/*!40000 ALTER TABLE \`posts\` DISABLE KEYS */;
INSERT INTO \`posts\` VALUES
(1,'plain'),
(2,'with (parens), commas; and a semicolon'),
(3,'it''s doubled'),
(4,'it\\'s escaped, and a backslash \\\\'),
(5,'line one\\nline two),(6,''not a row'),
(6,NULL);
INSERT INTO \`posts\` VALUES (7,'old style, one line'),(8,'x');
/*!40000 ALTER TABLE \`posts\` ENABLE KEYS */;
UNLOCK TABLES;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=\`root\`@\`localhost\`*/ /*!50003 TRIGGER t1 AFTER INSERT ON posts FOR EACH ROW
INSERT INTO \`audit\` VALUES (1),(2) */;;
DELIMITER ;

CREATE TABLE \`empty\` (
  \`x\` int
);
LOCK TABLES \`empty\` WRITE;
UNLOCK TABLES;

CREATE TABLE \`odd\`\`name\` (
  \`b\` blob
);
LOCK TABLES \`odd\`\`name\` WRITE;
INSERT INTO \`odd\`\`name\` VALUES
(0x00FF),
(_binary '`),
  Buffer.from([0xff, 0xfe, 0x28, 0x29, 0x5c, 0x27, 0x3b]),
  Buffer.from(`');
UNLOCK TABLES;

/*!50001 CREATE VIEW \`v\` AS SELECT 1 AS \`a\` */;

DELIMITER ;;
CREATE PROCEDURE \`p\`()
BEGIN
INSERT INTO \`posts\` VALUES (99,'not counted');
CREATE TABLE \`ghost\` (a int);
END ;;
DELIMITER ;

DELIMITER ;;
CREATE PROCEDURE \`q\`()
BEGIN
SELECT 'a string of the body, over lines:
DELIMITER ;
CREATE TABLE \`ghost2\` (a int)';
SELECT "it's", \`it's\` /* it's a comment
DELIMITER ;
CREATE TABLE \`ghost3\` (a int) */; -- it's
# it's
SELECT 'it\\'s
DELIMITER ;
CREATE TABLE \`ghost4\` (a int)';
END ;;
DELIMITER ;
-- Dump completed on 2026-12-02 10:00:00
`),
]);

const expected = { empty: 0, 'odd`name': 2, posts: 8 };

test('the rows of each table in a MariaDB dump, fed whole', (t) => {
  const c = new MysqlDumpCounter();
  c.write(DUMP);
  t.deepEqual(c.counts(), expected);
});

test('the same counts whatever the pieces the dump arrives in (1 byte, 7 bytes, random)', (t) => {
  for (const size of [1, 2, 7, 64, 1000]) {
    const c = new MysqlDumpCounter();
    for (let i = 0; i < DUMP.length; i += size) c.write(DUMP.subarray(i, i + size));
    t.deepEqual(c.counts(), expected, `pieces of ${size}`);
  }
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % 50) + 1;
  const c = new MysqlDumpCounter();
  for (let i = 0; i < DUMP.length; ) {
    const n = rand();
    c.write(DUMP.subarray(i, i + n));
    i += n;
  }
  t.deepEqual(c.counts(), expected);
});

test('a dump without tables counts nothing', (t) => {
  const c = new MysqlDumpCounter();
  c.write(Buffer.from('-- MariaDB dump\n-- Dump completed on 2026-12-02\n'));
  t.deepEqual(c.counts(), {});
});

test('a table with an INVISIBLE column (mariadb-dump names the columns of its INSERTs) and a trigger written under NO_BACKSLASH_ESCAPES (a \\ before its string\'s end is no escape): every row and table counted', (t) => {
  const dump = Buffer.from(`-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB
CREATE TABLE \`users\` (
  \`id\` int(11) NOT NULL,
  \`secret\` varchar(10) DEFAULT NULL INVISIBLE
);
LOCK TABLES \`users\` WRITE;
INSERT INTO \`users\` (\`id\`, \`secret\`) VALUES (1,'a'),(2,'b'),(3,'c');
UNLOCK TABLES;
CREATE TABLE \`a\` (\`x\` int);
LOCK TABLES \`a\` WRITE;
INSERT INTO \`a\` VALUES (1);
UNLOCK TABLES;
/*!50003 SET @saved_sql_mode       = @@sql_mode */ ;
/*!50003 SET sql_mode              = 'NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES' */ ;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=\`app\`@\`%\`*/ /*!50003 TRIGGER t1 BEFORE INSERT ON a FOR EACH ROW SET NEW.x = '\\' */;;
DELIMITER ;
/*!50003 SET sql_mode              = @saved_sql_mode */ ;
CREATE TABLE \`orders\` (\`n\` int);
LOCK TABLES \`orders\` WRITE;
INSERT INTO \`orders\` VALUES (1),(2);
UNLOCK TABLES;
-- Dump completed on 2026-12-02
`);
  for (const size of [dump.length, 1, 5]) {
    const c = new MysqlDumpCounter();
    for (let i = 0; i < dump.length; i += size) c.write(dump.subarray(i, i + size));
    t.deepEqual(c.counts(), { a: 1, orders: 2, users: 3 }, `pieces of ${size}`);
  }
});
