# service/mysql — MariaDB listening on the node's private address, reachable only from the
# nodeset's app servers (the firewall in base; each app's user is bound to the app servers'
# addresses by `silver update`).
# Input: SILVER_PACKAGES SILVER_ADDRESS

# shellcheck disable=SC2086 # (a list of package names, split on purpose)
ensure_pkgs $SILVER_PACKAGES
ensure_file /etc/mysql/mariadb.conf.d/60-silver.cnf 644 root:root <<EOT
# managed by silver
[mysqld]
bind-address = $SILVER_ADDRESS
skip-name-resolve
EOT
_restart=$CHANGED

ensure_on mariadb
if [ "$_restart" = 1 ] && is_active mariadb; then
  restart_unit mariadb
fi
followed /etc/mysql/mariadb.conf.d/60-silver.cnf "restart mariadb"

# Scheduled backups (the nodeset's backup = of this service): the timer, the copy key.
ensure_backup_schedule
true
