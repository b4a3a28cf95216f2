-- Expand: notes gain an author (nullable, so instances that do not know it keep working).
ALTER TABLE notes ADD COLUMN author text;
