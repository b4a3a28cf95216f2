# service/postgresql — PostgreSQL listening on the node's private address, reachable only from
# the nodeset's app servers (pg_hba here, the firewall in base). Databases and users per app are
# made by `silver update`.
# Input: SILVER_PACKAGES SILVER_ADDRESS SILVER_APPSERVER_ADDRS

ensure_pkgs $SILVER_PACKAGES
_dir=$(ls -d /etc/postgresql/*/main 2> /dev/null | sort -V | tail -1)
if [ -z "$_dir" ]; then
  if [ "$CHECK" = 1 ]; then exit 0; fi
  echo "no PostgreSQL cluster under /etc/postgresql" >&2
  exit 1
fi
_ver=$(basename "$(dirname "$_dir")")
_unit="postgresql@$_ver-main"

ensure_file "$_dir/conf.d/silver.conf" 644 postgres:postgres <<EOT
# managed by silver
listen_addresses = 'localhost,$SILVER_ADDRESS'
password_encryption = scram-sha-256
EOT
_restart=$CHANGED

_hba=$(mktemp)
{
  cat <<'EOT'
# managed by silver
# TYPE  DATABASE  USER      ADDRESS          METHOD
local   all       postgres                   peer
local   all       all                        peer
host    all       all       127.0.0.1/32     scram-sha-256
host    all       all       ::1/128          scram-sha-256
# the nodeset's app servers; each app's user may connect only to its own database
EOT
  for a in $SILVER_APPSERVER_ADDRS; do
    printf 'host    sameuser  all       %-16s scram-sha-256\n' "$a/32"
  done
} > "$_hba"
ensure_file "$_dir/pg_hba.conf" 640 postgres:postgres < "$_hba"
_reload=$CHANGED
rm -f "$_hba"

unit_cache postgresql.service "$_unit.service"
ensure_on postgresql
if ! is_active "$_unit"; then
  changed "start $_unit"
  act systemctl start "$_unit"
elif [ "$_restart" = 1 ]; then
  restart_unit "$_unit"
elif [ "$_reload" = 1 ]; then
  reload_unit "$_unit"
fi
true
