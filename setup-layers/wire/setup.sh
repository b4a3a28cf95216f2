# wire — every node learns where every other node is: a managed block in /etc/hosts (unless
# set_etc_hosts = false; other lines untouched) and /etc/silverlining/nodeset.conf in the
# design notes' format, read by the balancer and the app servers.
# Input: SILVER_SET_ETC_HOSTS SILVER_NODESET SILVER_HOSTS_LINES SILVER_NODESET_CONF

if [ "$SILVER_SET_ETC_HOSTS" = true ]; then
  printf '%s\n' "$SILVER_HOSTS_LINES" | ensure_block /etc/hosts "nodeset $SILVER_NODESET"
fi
prestat /etc/silverlining /etc/silverlining/nodeset.conf
ensure_dir /etc/silverlining 755 root:root
printf '%s\n' "$SILVER_NODESET_CONF" | ensure_file /etc/silverlining/nodeset.conf 644 root:root
true
