# wire — every node learns where every other node is: a managed block in /etc/hosts (unless
# set_etc_hosts = false; other lines untouched) and /etc/silverlining/nodeset.conf in the
# design notes' format, read by the balancer and the app servers.
# Input: SILVER_SET_ETC_HOSTS SILVER_NODESET SILVER_HOSTS_LINES SILVER_NODESET_CONF

if [ "$SILVER_SET_ETC_HOSTS" = true ]; then
  ensure_block /etc/hosts "nodeset $SILVER_NODESET" "$SILVER_HOSTS_LINES$NL"
fi
prestat /etc/silverlining /etc/silverlining/nodeset.conf
ensure_dir /etc/silverlining 755 root:root
ensure_known /etc/silverlining/nodeset.conf 644 root:root "$SILVER_NODESET_CONF_MD5" "$SILVER_NODESET_CONF$NL"
true
