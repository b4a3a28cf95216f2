# base — every node: packages, the deploy user with only the sudo rules deployment needs, one
# unprivileged user per application, silver's directories, and a firewall that opens only what
# the node's role serves. Services of other roles are kept off.
# Input (set by silver): SILVER_ROLE SILVER_PACKAGES SILVER_AUTHORIZED (the deploy user's keys: silver's
# and the deployers') SILVER_ADMIN_KEYS SILVER_APPS SILVER_APPSERVER_ADDRS
# SILVER_SERVICE_PORT SILVER_UNITS_OFF SILVER_BALANCED (1: the nodeset has a balancer)
# SILVER_NODE_ADDRS (every node's address)

# (silver-state was installed just before this line: a node that had none takes the run's lock)
take_fresh_lock

# shellcheck disable=SC2086 # (a list of package names, split on purpose)
ensure_pkgs $SILVER_PACKAGES

# Modes and owners of everything below, read at once.
prestat /etc/silverlining/authorized_keys /etc/silverlining/authorized_keys/silver /usr/local/lib/silverlining \
  /usr/local/lib/silverlining/bin /etc/sudoers.d/silver /etc/silverlining /var/lib/silverlining \
  /var/lib/silverlining/apps /var/lib/silverlining/state /var/log/silverlining /etc/nftables.conf
# shellcheck disable=SC2086 # (unquoted: silver reads these paths off this line; app names have no spaces)
for app in $SILVER_APPS; do prestat /var/log/silverlining/$app; done

# The deploy user: logs in with the deploy key and the deployers' own keys ([access]); root only
# through the helpers silver installs. Its keys, and silver-backup's, are root's files outside
# their homes (sshd reads only those for these users): root never writes into a folder the deploy
# user owns, where a planted link would turn the write against any file, and a deployer cannot
# keep access by adding a key of their own once theirs is removed from the nodeset.
ensure_user silver /home/silver /bin/sh
# Its home is root's, and empty: what a deployer left there would run as the deploy user at a
# later login once their key is gone (units for pam_systemd's user manager under ~/.config, a
# ~/.profile). Made root's here (nothing new can appear in it); emptied below, once a removed
# key's processes have ended.
ensure_dir /home/silver 755 root:root
ensure_dir /etc/silverlining 755 root:root
ensure_dir /etc/silverlining/authorized_keys 755 root:root
# A key taken away: what its owner left running as the deploy user (a session, a background
# process) ends with it — silver's own kept connections as the deploy user too. (Keys only added:
# nothing ends.) The intent is on the node before the file changes (FP_DIR/keys-removed), and
# goes only once no process is left: a run killed in between ends them at the next run.
# What a deployer could leave behind to run later as the deploy user once their key is gone — a
# crontab, at jobs, lingering user services — goes first, before its processes end (a job firing
# in between would start a new one); and the deploy user may use neither cron nor at.
ensure_absent /var/spool/cron/crontabs/silver
ensure_absent /var/lib/systemd/linger/silver
for _job in /var/spool/cron/atjobs/*; do
  if [ -f "$_job" ] && [ ! -L "$_job" ] && [ "$(stat -c %U "$_job")" = silver ]; then
    changed "remove the deploy user's at job ${_job##*/}"
    act rm -f "$_job"
  fi
done
for _deny in /etc/cron.deny /etc/at.deny; do
  ensure_block "$_deny" deploy-user "silver$NL"
done
_removed=0
if [ -f /etc/silverlining/authorized_keys/silver ]; then
  _slurp < /etc/silverlining/authorized_keys/silver
  _rest=$_S
  while [ -n "$_rest" ]; do
    _k=${_rest%%"$NL"*}
    _rest=${_rest#*"$NL"}
    [ -n "$_k" ] || continue
    case "$NL$SILVER_AUTHORIZED" in *"$NL$_k$NL"*) ;; *) _removed=1 ;; esac
  done
fi
[ "$_removed" = 0 ] || [ "$CHECK" = 1 ] || : > "$FP_DIR/keys-removed"
ensure_known /etc/silverlining/authorized_keys/silver 644 root:root "$SILVER_AUTHORIZED_MD5" "$SILVER_AUTHORIZED"
if [ "$_removed" = 1 ] || [ -e "$FP_DIR/keys-removed" ]; then
  changed "ended the deploy user's processes (a key was taken away)"
  if [ "$CHECK" != 1 ]; then
    # (the intent stays until none is left: a process that escaped is ended by the next run)
    _end_deployers() { end_user silver || { echo "some of the deploy user's processes could not be ended (a key was taken away): the next setup-node tries again" >&2; exit 1; }; }
    _end_deployers
    # What a deployer started as an app's user through silver-deploy (one-off commands, update
    # scripts: systemd runs them in silver-oneoff.slice) would outlive the session: it ends too.
    systemctl stop silver-oneoff.slice 2> /dev/null || true
    if systemctl is-active -q silver-oneoff.slice 2> /dev/null; then
      echo "the deployers' one-off commands could not be stopped (a key was taken away): the next setup-node tries again" >&2
      exit 1
    fi
    # (and once more: what the deploy user started while the slice took its time to stop)
    _end_deployers
    rm -f "$FP_DIR/keys-removed"
  fi
fi
# (after the processes ended: one still writing into a folder of its own there would make the
# removal fail — which never stops a run, and the next one tries again; find never follows a link)
_planted=''
for _f in /home/silver/* /home/silver/.[!.]* /home/silver/..?*; do
  if [ -e "$_f" ] || [ -L "$_f" ]; then _planted=1; fi
done
if [ -n "$_planted" ]; then
  changed "emptied the deploy user's home"
  act find /home/silver -mindepth 1 -delete || echo "the deploy user's home could not be emptied: the next setup-node tries again" >&2
fi
# What a deployer could leave behind to keep access once their key is gone: ~/.ssh/rc (run at
# every later login, silver's own included), forwarded sockets or ports. The apps' users log in
# with no key at all: an app (or a deployer through silver run) could otherwise write one into its
# own home and keep a tunnel into the nodeset's network.
_sshd="Match User silver,silver-backup,silver-acme
	AuthorizedKeysFile /etc/silverlining/authorized_keys/%u
	PermitUserRC no
	DisableForwarding yes
	PermitTunnel no
Match User app-*
	AuthorizedKeysFile none
	AuthorizedKeysCommand none
	PermitUserRC no
	DisableForwarding yes
	PermitTunnel no
Match all"
_sshd_before=''
[ -f /etc/ssh/sshd_config ] && { _slurp < /etc/ssh/sshd_config; _sshd_before=$_S; }
# (at the end of sshd_config, closed by Match all: what is appended after it stays global)
ensure_block /etc/ssh/sshd_config authorized-keys "$_sshd$NL"
if [ "$CHANGED" = 1 ] && [ "$CHECK" != 1 ]; then
  if ! /usr/sbin/sshd -t 2> /dev/null; then
    printf '%s' "$_sshd_before" > /etc/ssh/sshd_config
    echo "sshd rejected silver's AuthorizedKeysFile rule: sshd_config is as it was" >&2
    exit 1
  fi
  reload_unit ssh
fi
followed /etc/ssh/sshd_config "reload ssh"
# People's keys for root (admins = in [access]), in a block of their own: the provider's and
# silver's lines stay as they are; none by default.
_admins_block=0
if [ -z "$SILVER_ADMIN_KEYS" ] && [ -f /root/.ssh/authorized_keys ]; then
  # (read in the shell: a no-op run starts no process for this)
  _slurp < /root/.ssh/authorized_keys
  case "$_S" in *"# BEGIN silverlining admins"*) _admins_block=1 ;; esac
fi
if [ -n "$SILVER_ADMIN_KEYS" ] || [ "$_admins_block" = 1 ]; then
  ensure_dir /root/.ssh 700 root:root
  ensure_block /root/.ssh/authorized_keys admins "$SILVER_ADMIN_KEYS"
fi
ensure_dir /usr/local/lib/silverlining 755 root:root
ensure_dir /usr/local/lib/silverlining/bin 755 root:root
# The rule is fixed text, checked by visudo before it is written (in root's own /run/silverlining:
# a name in /tmp could be a planted link); one that does not validate never replaces the rule in
# place, so the deploy user keeps the access it had.
_sudoers="# managed by silver: the deploy user may run silver's root-owned helpers, nothing else
silver ALL=(root) NOPASSWD: /usr/local/lib/silverlining/bin/"
if [ "$CHECK" != 1 ] && ! known_same /etc/sudoers.d/silver '' "$_sudoers$NL"; then
  root_run_dir /run/silverlining || { echo "/run/silverlining is not a folder of root's alone" >&2; exit 1; }
  printf '%s\n' "$_sudoers" > /run/silverlining/sudoers.$$
  visudo -cqf /run/silverlining/sudoers.$$ || { rm -f /run/silverlining/sudoers.$$; echo "the sudoers rule does not validate: the one in place is kept" >&2; exit 1; }
  rm -f /run/silverlining/sudoers.$$
fi
ensure_file /etc/sudoers.d/silver 440 root:root <<EOT
$_sudoers
EOT

# Directories: configuration, instances, locks, logs.
ensure_dir /var/lib/silverlining 755 root:root
# (root's alone: root helpers act on these paths, so the deploy user must not change them)
ensure_data_dir /var/lib/silverlining/apps 755 root:root
ensure_data_dir /var/lib/silverlining/state 700 root:root
ensure_data_dir /var/log/silverlining 755 root:root

# The node that keeps the copies of the scheduled backups (silver's choice: the balancer, else
# the first app server): user silver-backup, whose one key (the nodeset's backup key, held by
# its service nodes) may run silver-backup-receive and nothing else.
if [ -n "$SILVER_BACKUP_RECEIVE_KEYS" ]; then
  ensure_user silver-backup /var/lib/silverlining/backup-copies /bin/sh
  ensure_data_dir /var/lib/silverlining/backup-copies 700 silver-backup:silver-backup
  ensure_known /etc/silverlining/authorized_keys/silver-backup 644 root:root "$SILVER_BACKUP_RECEIVE_KEYS_MD5" "$SILVER_BACKUP_RECEIVE_KEYS"
else
  ensure_absent /etc/silverlining/authorized_keys/silver-backup
fi

# One unprivileged user per application, with its own home and log directory.
for app in $SILVER_APPS; do
  ensure_user "app-$app" "/var/lib/silverlining/home/$app"
  # (its own: useradd makes it readable by all, and an app's libraries write there)
  ensure_data_dir "/var/lib/silverlining/home/$app" 700 "app-$app:app-$app"
  ensure_data_dir "/var/log/silverlining/$app" 750 "app-$app:app-$app"
done

# Services that belong to other roles stay off (SILVER_UNITS_OFF: from the service descriptors).
for unit in $SILVER_UNITS_OFF; do ensure_off "$unit"; done

# (the firewall's file as it was, read by the shell: one nft refuses does not stay where the next
# boot loads it — with no firewall at all)
_nft_prev=''
if [ "$CHECK" != 1 ] && [ -f /etc/nftables.conf ] && [ ! -L /etc/nftables.conf ]; then
  _slurp < /etc/nftables.conf
  _nft_prev=$_S
fi
# _split_addrs LIST: of the addresses in LIST, the IPv4 ones in _v4, the IPv6 ones in _v6, each as
# an nft set's list.
_split_addrs() {
  _v4='' _v6=''
  for _a in $1; do
    case "$_a" in *:*) _v6="$_v6${_v6:+, }$_a" ;; *) _v4="$_v4${_v4:+, }$_a" ;; esac
  done
}
# Firewall: SSH, then only what the role serves. Behind a balancer, an app server's port 80 is
# open to the nodeset's own nodes only, so that no client walks around the balancer (and its
# maintenance or read-only mode); without one, the app servers are the site.
case "$SILVER_ROLE" in
  appserver)
    _rules="		tcp dport 80 accept"
    if [ "$SILVER_BALANCED" = 1 ]; then
      _split_addrs "$SILVER_NODE_ADDRS"
      _rules=""
      [ -z "$_v4" ] || _rules="		ip saddr { $_v4 } tcp dport 80 accept"
      [ -z "$_v6" ] || _rules="$_rules${_rules:+$NL}		ip6 saddr { $_v6 } tcp dport 80 accept"
    fi
    ;;
  balancer)
    # (port 80 is everyone's, the other balancer of a pair included: with tls = acme each passes
    # it the ACME server's validation requests it has no answer for)
    _rules="		tcp dport { 80, 443 } accept"
    # (a balancer pair: VRRP, IP protocol 112, from the other balancer only)
    [ -z "$SILVER_VRRP_PEER" ] || _rules="$_rules${NL}		ip saddr $SILVER_VRRP_PEER ip protocol 112 accept"
    ;;
  service:*)
    _rules=""
    if [ -n "$SILVER_APPSERVER_ADDRS" ]; then
      # shellcheck disable=SC2086 # (the addresses split on purpose: one space between them)
      _rules="		ip saddr { $(echo $SILVER_APPSERVER_ADDRS | sed 's/ /, /g') } tcp dport $SILVER_SERVICE_PORT accept"
    fi
    ;;
  *) _rules="" ;;
esac
# The cloud's instance metadata service (EC2's, OpenStack's: 169.254.169.254, EC2's IPv6
# fd00:ec2::254) is root's alone: it hands anyone who asks the instance's user data (OpenStack's
# holds the node's SSH host key) and, on EC2, the credentials of its instance role — an app's
# user, or any other, gets a refusal (cloud-init runs as root).
_output_rules="		ip daddr 169.254.169.254 meta skuid != root reject
		ip6 daddr fd00:ec2::254 meta skuid != root reject"
_include=""
if [ "$SILVER_ROLE" = appserver ]; then
  # On an app server the apps' instances listen on 127.0.0.1:20001-29999; only nginx (www-data)
  # and root (silver-deploy's checks) may connect to them, on any address: no app reaches another
  # app's backend (or its update_fetch hooks) past the front proxy. (And the table silver-deploy
  # keeps of who may answer on each instance's port: see its listeners_sync; loaded with the
  # rest, at boot too; none before the first instance.)
  _include='include "/etc/silverlining/nft.d/*.nft"'
  # (a connection of anyone but root and nginx refused at once)
  _root_nginx_only='meta skuid != { root, www-data } reject with tcp reset'
  _output_rules="$_output_rules
		tcp dport 20000-29999 $_root_nginx_only"
  # Behind a balancer no app walks around it either through an app server's own front proxy —
  # this node's (the loopback, its own addresses: the traffic leaves by lo) or another app
  # server's — with a Host of another app's: that app's maintenance, read-only mode and allow
  # list, and the forwarded headers the balancer sets, are the balancer's. Apps reach each other
  # (and themselves) by their public address, the balancer's.
  if [ "$SILVER_BALANCED" = 1 ]; then
    _output_rules="$_output_rules
		oifname \"lo\" tcp dport 80 $_root_nginx_only"
    _split_addrs "$SILVER_APPSERVER_ADDRS"
    [ -z "$_v4" ] || _output_rules="$_output_rules
		ip daddr { $_v4 } tcp dport 80 $_root_nginx_only"
    [ -z "$_v6" ] || _output_rules="$_output_rules
		ip6 daddr { $_v6 } tcp dport 80 $_root_nginx_only"
  fi
fi
_output="	chain output {
		type filter hook output priority filter; policy accept;
$_output_rules
	}"
ensure_file /etc/nftables.conf 755 root:root <<EOT
#!/usr/sbin/nft -f
# managed by silver: role $SILVER_ROLE
flush ruleset
table inet silver {
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept
		ct state established,related accept
		ct state invalid drop
		meta l4proto { icmp, ipv6-icmp } accept
		tcp dport 22 accept
$_rules
	}
$_output
}
$_include
EOT
if [ "$CHANGED" = 1 ]; then
  if ! act nft -f /etc/nftables.conf; then
    if [ -n "$_nft_prev" ]; then
      _want=$_nft_prev
      _write_want /etc/nftables.conf 755 root:root
    fi
    echo "nftables refused the new firewall rules: the rules loaded before stay, and so does the file the boot loads" >&2
    exit 1
  fi
else
  firewall_loaded
fi
unit_state nftables file
if [ "$_FILE" != enabled ]; then
  changed "enable nftables"
  act systemctl enable -q nftables
fi
