# service/postgresql — PostgreSQL listening on the node's private address, reachable only from
# the nodeset's app servers (pg_hba here, the firewall in base). Databases and users per app are
# made by `silver update`.
# Input: SILVER_PACKAGES SILVER_ADDRESS SILVER_APPSERVER_ADDRS

# shellcheck disable=SC2086 # (a list of package names, split on purpose)
ensure_pkgs $SILVER_PACKAGES
# (the account a restore's load runs pg_restore as: an archive from outside, read with the app
# role's password for that session alone — no other program runs as it)
ensure_user silver-pgload /var/lib/silverlining/pgload
# The newest cluster (major versions are whole numbers), found without starting a process.
_ver=''
for _d in /etc/postgresql/*/main; do
  [ -d "$_d" ] || continue
  _v=${_d%/main}
  _v=${_v##*/}
  case "$_v" in '' | *[!0-9]*) continue ;; esac
  if [ -z "$_ver" ] || [ "$_v" -gt "$_ver" ]; then _ver=$_v; fi
done
if [ -z "$_ver" ]; then
  if [ "$CHECK" = 1 ]; then exit 0; fi
  echo "no PostgreSQL cluster under /etc/postgresql" >&2
  exit 1
fi
_dir="/etc/postgresql/$_ver/main"
_unit="postgresql@$_ver-main"
prestat "$_dir/conf.d/silver.conf" "$_dir/pg_hba.conf"

# (the cluster's folders are the postgres user's: its files are written as postgres)
ensure_file_as postgres "$_dir/conf.d/silver.conf" 644 <<EOT
# managed by silver
listen_addresses = 'localhost,$SILVER_ADDRESS'
password_encryption = scram-sha-256
EOT
_restart=$CHANGED

_hba="# managed by silver
# TYPE  DATABASE  USER      ADDRESS          METHOD
local   all       postgres                   peer
local   all       all                        reject
host    all       all       127.0.0.1/32     scram-sha-256
host    all       all       ::1/128          scram-sha-256
# the nodeset's app servers; each app's user may connect only to its own database"
for a in $SILVER_APPSERVER_ADDRS; do
  _a="$a/32"
  while [ ${#_a} -lt 16 ]; do _a="$_a "; done
  _hba="$_hba${NL}host    sameuser  all       $_a scram-sha-256"
done
ensure_file_as postgres "$_dir/pg_hba.conf" 640 <<EOT
$_hba
EOT
_reload=$CHANGED

ensure_on postgresql
# (postgresql.service only starts the clusters: the cluster's own unit is the one that runs)
_track on "$_unit"
if ! is_active "$_unit"; then
  changed "start $_unit"
  act systemctl start "$_unit"
elif [ "$_restart" = 1 ]; then
  restart_unit "$_unit"
elif [ "$_reload" = 1 ]; then
  reload_unit "$_unit"
fi
followed "$_dir/conf.d/silver.conf" "$_dir/pg_hba.conf" "start $_unit" "restart $_unit" "reload $_unit"

# Scheduled backups (the nodeset's backup = of this service): the timer, the copy key.
ensure_backup_schedule
true
