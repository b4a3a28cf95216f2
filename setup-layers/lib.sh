# lib.sh — helpers every setup layer uses; silver sends it ahead of the layer's setup.sh.
# Every helper checks before it changes. A change is reported on stdout as
#   silver-changed: WHAT          (or, with SILVER_CHECK=1, as  silver-would: WHAT  and nothing is done)
# Helpers that can change something set CHANGED=1 when they did (or would), else CHANGED=0.
set -eu
umask 022
export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C
CHECK=${SILVER_CHECK:-0}
# (silver's root helpers, installed by the layers: the deploy user's one sudo rule points here)
HELPER_BIN=/usr/local/lib/silverlining/bin

changed() {
  if [ "$CHECK" = 1 ]; then echo "silver-would: $*"; else
    echo "silver-changed: $*"
    # (and in the node's journal, with silver's other steps: silver logs silver FILE)
    logger -t silverlining -- "setup ${SILVER_LAYER:-}: $*" 2> /dev/null || true
    # The node script's caches (modes, hashes, unit states) were read before this change: the
    # layers after this one read afresh (see layer_begin).
    [ -z "${SILVER_STALE:-}" ] || { : > "$SILVER_STALE"; } 2> /dev/null || true
    # (on the layer's list, before the change is made: see layer_begin)
    [ -z "${_DIRTY:-}" ] || printf '%s\n' "$*" >> "$_DIRTY"
  fi
}

# layer_begin: the start of each layer (in its own subshell): drops the caches the node script
# read at its start when an earlier layer changed something.
#
# layer_begin LAYER also keeps the follow-ups of a change safe from a crash: a layer lists each
# change on the node before it makes it (FP_DIR/dirty.LAYER, by changed), and only a layer that
# ends whole (layer_end) removes the list. A run killed, cut off or failed between a change and
# its follow-up (the reload, restart or daemon-reload a changed file asks for) leaves the list
# behind: in the next run of that layer, a helper whose path (user, packages) is on it says
# CHANGED=1 (_pending), so that the follow-ups of those changes happen though the files match by
# then — those of the listed changes only, however often the layer fails.
layer_begin() {
  if [ -n "${SILVER_STALE:-}" ] && [ -e "$SILVER_STALE" ]; then
    _STAT="$NL" _MD5="$NL" _UNIT_CACHE="" _PASSWD=""
  fi
  _l=$1
  case "$_l" in */*) _l="${_l%%/*}-${_l#*/}" ;; esac
  _DIRTY=$FP_DIR/dirty.$_l
  _DIRTY_LIST=''
  if [ -f "$_DIRTY" ]; then
    _slurp < "$_DIRTY"
    _DIRTY_LIST="$NL$_S"
  fi
  # (a check-only run lists nothing: it says what a real run would do, the follow-ups included)
  [ "$CHECK" != 1 ] || _DIRTY=''
}

# layer_end: the layer ended whole: its follow-ups are done (see layer_begin).
layer_end() {
  [ -z "$_DIRTY" ] || rm -f "$_DIRTY"
}

# end_user USER|UID: every process of USER ended — its own and the sudo it ran, one that keeps
# forking anew too, and the root helpers sudo started for it (SUDO_UID in their environment,
# which no user can change); false when some are still there after 5 seconds. The user's own
# are signalled by the kernel all at once (kill -1 as that user: no fork outruns it, as it
# outruns any scan of the process list), first stopped, then killed.
end_user() {
  # (USER by name, or by number)
  case "$1" in *[!0-9]*) _uid=$(id -u "$1") || return 0 ;; *) _uid=$1 ;; esac
  # (the shell's own kill: -1 is every process the caller may signal, the caller aside)
  setpriv --reuid="$_uid" --regid="$_uid" --clear-groups sh -c 'kill -STOP -1' 2> /dev/null || true
  _i=0
  while _now=$(_user_pids "$_uid") && [ -n "$_now" ]; do
    [ "$_i" -lt 50 ] || return 1
    setpriv --reuid="$_uid" --regid="$_uid" --clear-groups sh -c 'kill -KILL -1' 2> /dev/null || true
    # shellcheck disable=SC2086 # (process ids)
    kill -KILL $_now 2> /dev/null || true
    sleep 0.1
    _i=$((_i + 1))
  done
}

# _user_pids UID: the ids of the processes end_user ends, sorted, once each.
_user_pids() {
  {
    pgrep -u "$1" || true
    pgrep -U "$1" || true
    grep -lsxz "SUDO_UID=$1" /proc/[0-9]*/environ 2> /dev/null | while IFS=/ read -r _ _ _p _; do
      [ "$_p" = "$$" ] || echo "$_p"
    done
  } | sort -un
}

# _pending KEY...: CHANGED=1 when an earlier run listed a change of any KEY (a path, a user, a
# package: as changed names it, alone, after a word, or before ": ") and did not end its layer
# whole; else CHANGED=0.
_pending() {
  CHANGED=0
  [ -n "${_DIRTY_LIST:-}" ] || return 0
  for _key; do
    if _names "$_DIRTY_LIST" "$_key"; then CHANGED=1 && return 0; fi
  done
}

# _names TEXT KEY: TEXT (lines, each between line breaks) names KEY as changed names it — a line
# that is KEY, begins with "KEY: ", ends with " KEY" or holds " KEY "; an empty KEY, nothing.
_names() {
  [ -n "$2" ] || return 1
  case "$1" in *"$NL$2$NL"* | *"$NL$2: "* | *" $2$NL"* | *" $2 "*) return 0 ;; esac
  return 1
}

# followed KEY...: the follow-ups of the changes of each KEY (as _pending names them: a path; the
# follow-up's own line whole, as "reload nginx") are done — their lines off the layer's list, so
# that a later failure of the layer repeats none of them (a restart that passed is not done again
# on every run while a later step keeps failing). Put right after the follow-up; a run killed
# before it only repeats the follow-up.
followed() {
  [ -n "${_DIRTY:-}" ] || return 0
  _unlisted "${_DIRTY_LIST:-}" "$@"
  [ "$_S" != "$NL" ] || _S=''
  _DIRTY_LIST=$_S
  [ -f "$_DIRTY" ] || return 0
  _slurp < "$_DIRTY"
  _unlisted "$NL$_S" "$@"
  if [ "$_S" = "$NL" ]; then
    rm -f "$_DIRTY"
  else
    printf '%s' "${_S#"$NL"}" > "$_DIRTY.new" && mv -f "$_DIRTY.new" "$_DIRTY"
  fi
}

# _unlisted LIST KEY...: LIST (lines, each after a line break) without the lines that name any
# KEY, in _S.
_unlisted() {
  _in=$1
  shift
  _S=$NL
  while [ -n "$_in" ]; do
    _in=${_in#"$NL"}
    _line=${_in%%"$NL"*}
    _in=${_in#"$_line"}
    [ -n "$_line" ] || continue
    _hit=0
    for _key; do
      if _names "$NL$_line$NL" "$_key"; then _hit=1 && break; fi
    done
    [ "$_hit" = 1 ] || _S="$_S$_line$NL"
  done
}

# act CMD...: runs CMD unless this is a check-only run.
act() {
  if [ "$CHECK" != 1 ]; then "$@"; fi
}

# Fewer processes, faster no-op runs: contents are compared in the shell, and modes/owners of
# the paths a layer manages are read with one `stat` call (prestat) instead of one per path.
NL='
'

# _slurp: stdin into _S, every line ending in a newline (no process started).
_slurp() {
  _S=''
  while IFS= read -r _l || [ -n "$_l" ]; do _S="$_S$_l$NL"; done
}

# prestat PATH...: remembers "mode owner:group" of these paths, with one `stat` for the ones not
# remembered yet (paths without spaces; a missing one is remembered as "?", read again if asked).
_STAT="$NL"
prestat() {
  _want=''
  for _p in "$@"; do
    case "$_STAT" in *"$NL$_p "*) ;; *) _want="$_want $_p" ;; esac
  done
  [ -n "$_want" ] || return 0
  # shellcheck disable=SC2086 # (a list of paths without spaces, split on purpose)
  _STAT="$_STAT$(stat -c '%n %a %U:%G' $_want 2> /dev/null || true)$NL"
  for _p in $_want; do
    case "$_STAT" in *"$NL$_p "*) ;; *) _STAT="$_STAT$_p ?$NL" ;; esac
  done
}

# stat_of PATH: sets _ST to "mode owner:group" (empty when the path does not exist).
stat_of() {
  case "$_STAT" in
    *"$NL$1 "*)
      _ST=${_STAT#*"$NL$1 "}
      _ST=${_ST%%"$NL"*}
      ;;
    *) _ST='?' ;;
  esac
  if [ "$_ST" = '?' ]; then _ST=$(stat -c '%a %U:%G' "$1" 2> /dev/null || true); fi
}

# prehash PATH...: remembers the MD5 sums of these files (one `md5sum`; missing ones left out),
# for ensure_known, which compares a file with content whose sum silver computed.
_MD5="$NL"
prehash() {
  [ $# -gt 0 ] || return 0
  _MD5="$_MD5$(md5sum "$@" 2> /dev/null || true)$NL"
}

# known_same PATH MD5 CONTENT: true when the file holds this content (summed, or read).
known_same() {
  case "$_MD5" in
    *"$NL$2  $1$NL"*) return 0 ;;
    *"  $1$NL"*) return 1 ;;
  esac
  [ -f "$1" ] || return 1
  _slurp < "$1"
  [ "$_S" = "$3" ]
}

# ensure_known PATH MODE OWNER:GROUP MD5 CONTENT: ensure_file for content silver rendered and
# summed; the file is read only when prehash did not cover it.
ensure_known() {
  _track path "$1"
  _want=$5
  _pending "$1"
  if known_same "$1" "$4" "$5"; then _ensure_mode "$1" "$2" "$3"; else _write_want "$1" "$2" "$3"; fi
}

# ensure_file PATH MODE OWNER:GROUP  < content
ensure_file() {
  _track path "$1"
  _slurp
  _want=$_S
  _pending "$1"
  if [ -f "$1" ]; then
    _slurp < "$1"
    if [ "$_S" = "$_want" ]; then
      _ensure_mode "$1" "$2" "$3"
      return 0
    fi
  fi
  _write_want "$1" "$2" "$3"
}

# _ensure_mode PATH MODE OWNER:GROUP: fixes mode and owner of an existing path (CHANGED=1 if so).
_ensure_mode() {
  stat_of "$1"
  if [ "$_ST" != "$2 $3" ]; then
    changed "$1: mode $2, owner $3"
    # (the owner first: while a path is still a user's, that user could change its mode between
    # the two — a home made root's would stay writable by all)
    act chown "$3" "$1"
    # (five digits: chmod keeps a folder's set-group-ID bit for a shorter mode, and a folder an
    # app made g+s would never match)
    _m=$2
    [ "${#_m}" -eq 4 ] || _m=0$_m
    act chmod "0$_m" "$1"
    CHANGED=1
  fi
}

# _write_want PATH MODE OWNER:GROUP: (re)writes the file with $_want, atomically.
_write_want() {
  _path=$1 _mode=$2 _owner=$3
  changed "$_path"
  CHANGED=1
  [ "$CHECK" = 1 ] && return 0
  mkdir -p "${_path%/*}"
  # (made root's alone, then given its mode: a key is never readable by others on its way)
  rm -f "$_path.silver-new"
  (umask 077 && printf '%s' "$_want" > "$_path.silver-new")
  chown "$_owner" "$_path.silver-new"
  chmod "$_mode" "$_path.silver-new"
  # (on disk before its name: a power cut must not leave an empty sshd_config, sudoers file or
  # firewall where the boot reads one)
  sync "$_path.silver-new"
  mv -f "$_path.silver-new" "$_path"
}

# ensure_file_as USER PATH MODE  < content: ensure_file for a file in a folder USER owns (and may
# swap for a link at any time): compared by root, written by USER, so that a link USER planted
# leads nowhere USER could not write anyway. The file ends up USER's, with USER's own group.
ensure_file_as() {
  _track path "$2"
  _slurp
  _want=$_S
  _pending "$2"
  stat_of "$2"
  if [ -f "$2" ] && [ ! -L "$2" ] && case "$_ST" in "$3 $1:"*) true ;; *) false ;; esac; then
    _slurp < "$2"
    [ "$_S" = "$_want" ] && return 0
  fi
  changed "$2"
  CHANGED=1
  [ "$CHECK" = 1 ] && return 0
  # shellcheck disable=SC2016 # (expanded by that sh, from its arguments)
  printf '%s' "$_want" | runuser -u "$1" -- sh -c 'umask 077 && mkdir -p "${1%/*}" && rm -f "$1.silver-new" && cat > "$1.silver-new" && chmod "$2" "$1.silver-new" && mv -f "$1.silver-new" "$1"' sh "$2" "$3"
}

# ensure_absent PATH
ensure_absent() {
  _track path "$1"
  _pending "$1"
  if [ -e "$1" ] || [ -L "$1" ]; then
    changed "remove $1"
    act rm -f "$1"
    CHANGED=1
  fi
}

# ensure_dir PATH MODE OWNER:GROUP
ensure_dir() {
  _track path "$1"
  _ensure_dir "$@"
}

# ensure_data_dir PATH MODE OWNER:GROUP: a folder whose entries are data others write (the shared
# state, logs, the apps' homes): the fingerprint watches what this checks — a folder, not a link,
# its mode and owner — and not the folder's change time, which every entry written there moves
# (a deploy's record, the deploy lock's heartbeat, an app's new file would each make the next
# no-op a full run).
ensure_data_dir() {
  _track dir "$1 $2 $3"
  _ensure_dir "$@"
}

_ensure_dir() {
  _pending "$1"
  if [ ! -d "$1" ]; then
    changed "directory $1"
    act install -d -m "$2" -o "${3%%:*}" -g "${3##*:}" "$1"
    CHANGED=1
    return 0
  fi
  _ensure_mode "$1" "$2" "$3"
}

# pkg_cache PACKAGE...: remembers which of these are installed (one dpkg-query for many layers).
# The installed ones are also written to a stamp file; while dpkg's status file is older than
# the stamp, nothing was installed or removed since, and the stamp answers without dpkg-query.
_PKGS=""
_PKGS_KNOWN=""
PKG_STAMP=/var/lib/silverlining/packages.installed
pkg_cache() {
  [ $# -gt 0 ] || return 0
  # shellcheck disable=SC3013 # (-nt: dash, Debian's sh, has it)
  if [ -f "$PKG_STAMP" ] && [ "$PKG_STAMP" -nt /var/lib/dpkg/status ]; then
    _slurp < "$PKG_STAMP"
    _stamped=" ${_S%"$NL"} "
    _all=1
    for _p in "$@"; do
      case "$_stamped" in *" $_p "*) ;; *) _all=0 ;; esac
    done
    if [ "$_all" = 1 ]; then
      _PKGS="$_PKGS $* "
      _PKGS_KNOWN="$_PKGS_KNOWN $* "
      return 0
    fi
  fi
  _found=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2> /dev/null | awk '$2 == "installed" { printf "%s ", $1 }')
  _PKGS="$_PKGS $_found"
  _PKGS_KNOWN="$_PKGS_KNOWN $* "
  if [ "$CHECK" != 1 ] && [ -d "${PKG_STAMP%/*}" ]; then
    # shellcheck disable=SC2086 # (the names split on purpose: one space between them)
    { echo $_PKGS > "$PKG_STAMP"; } 2> /dev/null || true
  fi
}

# ensure_pkgs PACKAGE...
ensure_pkgs() {
  _pending "$@"
  [ $# -gt 0 ] || return 0
  _uncached=""
  for _p in "$@"; do
    case "$_PKGS_KNOWN" in *" $_p "*) ;; *) _uncached="$_uncached $_p" ;; esac
  done
  # shellcheck disable=SC2086 # (a list of package names, split on purpose)
  [ -z "$_uncached" ] || pkg_cache $_uncached
  _missing=""
  for _p in "$@"; do
    case "$_PKGS" in *" $_p "*) ;; *) _missing="$_missing $_p" ;; esac
  done
  [ -n "$_missing" ] || return 0
  changed "install$_missing"
  CHANGED=1
  [ "$CHECK" = 1 ] && return 0
  # (logs in root's own /run/silverlining, never in the shared /tmp)
  root_run_dir /run/silverlining || { echo "/run/silverlining is not a folder of root's alone" >&2; return 1; }
  # shellcheck disable=SC2086 # (a list of package names, split on purpose)
  if ! apt-get install -y -q --no-install-recommends $_missing > /run/silverlining/apt.log 2>&1; then
    apt-get update -q > /run/silverlining/apt-update.log 2>&1 || true
    apt-get install -y -q --no-install-recommends $_missing > /run/silverlining/apt.log 2>&1 || { tail -5 /run/silverlining/apt.log >&2; return 1; }
  fi
}

# ensure_user NAME HOME [SHELL]  (/etc/passwd read once; `id` asked only for a name not in it)
_PASSWD=""
ensure_user() {
  _pending "$1"
  if [ -z "$_PASSWD" ] && [ -f /etc/passwd ]; then
    _slurp < /etc/passwd
    _PASSWD="$NL$_S"
  fi
  case "$_PASSWD" in *"$NL$1:"*) return 0 ;; esac
  if ! id -u "$1" > /dev/null 2>&1; then
    changed "user $1"
    act useradd --system --create-home --home-dir "$2" --shell "${3:-/usr/sbin/nologin}" --user-group "$1"
    CHANGED=1
  fi
}

# Unit states. Most are read off the file system, without a process: a unit is installed when
# its unit file is there, enabled when a *.wants/ directory of /etc/systemd/system links it,
# active when its control group has processes. What that cannot tell ("?": masked or sysv
# units, oneshot units, a stopped service) is asked of systemd, for that unit only.
# Each unit is read once per layer (the newest line first): "ID LOADSTATE ACTIVESTATE UNITFILESTATE".
_UNIT_CACHE=""
_UNIT_DIRS="/etc/systemd/system /run/systemd/system /lib/systemd/system /usr/lib/systemd/system /run/systemd/generator /run/systemd/generator.late"

# _unit_fast UNIT.service: sets _LOAD _ACTIVE _FILE from the file system, "?" where unsure.
_unit_fast() {
  _LOAD=not-found _ACTIVE=inactive _FILE=-
  # An instance of a template (name@instance.service) is there when the template is.
  _file=$1 _slice=system.slice
  case "$1" in *@*.service) _file="${1%%@*}@.service" _slice="system.slice/system-${1%%@*}.slice" ;; esac
  # (a link in /etc/systemd/system: masked or aliased; systemd tells)
  if [ -L "/etc/systemd/system/$1" ]; then
    _LOAD='?' _ACTIVE='?' _FILE='?'
    return 0
  fi
  for _d in $_UNIT_DIRS; do
    if [ -e "$_d/$_file" ]; then _LOAD=loaded; break; fi
  done
  if [ "$_LOAD" != loaded ]; then
    # no unit file: not installed, unless a System V script stands for it
    [ -e "/etc/init.d/${1%.service}" ] && _LOAD='?' _ACTIVE='?' _FILE='?'
    return 0
  fi
  _FILE='?'
  for _w in /etc/systemd/system/*.wants/"$1" /etc/systemd/system/*.requires/"$1" /run/systemd/system/*.wants/"$1"; do
    if [ -e "$_w" ]; then _FILE=enabled; break; fi
  done
  # (a timer or socket has neither an invocation link nor a control group: systemd tells)
  case "$1" in *.service) ;; *) _ACTIVE='?'; return 0 ;; esac
  # systemd links /run/systemd/units/invocation:UNIT while the unit is not inactive.
  if [ -d /run/systemd/units ] && ! [ -L "/run/systemd/units/invocation:$1" ]; then
    _ACTIVE=inactive
    return 0
  fi
  _ACTIVE='?'
  for _c in "/sys/fs/cgroup/$_slice/$1/cgroup.events" "/sys/fs/cgroup/unified/$_slice/$1/cgroup.events"; do
    if [ -r "$_c" ]; then
      _k='' _v=''
      { read -r _k _v || true; } < "$_c"
      [ "$_k $_v" = "populated 1" ] && _ACTIVE=active
      break
    fi
  done
}

# _unit_ask UNIT.service: "ID LOADSTATE ACTIVESTATE UNITFILESTATE" from systemd.
_unit_ask() {
  systemctl show --property=Id,LoadState,ActiveState,UnitFileState "$1" 2> /dev/null | awk -F= '
    /^Id=/ { id = $2 } /^LoadState=/ { ld = $2 } /^ActiveState=/ { act = $2 } /^UnitFileState=/ { uf = $2 }
    END { if (id != "") print id, ld, act, (uf == "" ? "-" : uf) }'
}

# unit_state UNIT [all|file|active|off]: sets _LOAD, _ACTIVE, _FILE; asks systemd when what is
# needed (default: all) is unsure.
unit_state() {
  _u=$1
  case "$_u" in *.*) ;; *) _u="$_u.service" ;; esac
  case "$NL$_UNIT_CACHE" in
    *"$NL$_u "*)
      _line=$NL$_UNIT_CACHE
      _line=${_line#*"$NL$_u "}
      _line=${_line%%"$NL"*}
      ;;
    *)
      _unit_fast "$_u"
      _line="$_LOAD $_ACTIVE $_FILE"
      _UNIT_CACHE="$_u $_line$NL$_UNIT_CACHE"
      ;;
  esac
  # shellcheck disable=SC2086 # (the cached line split into its fields on purpose)
  set -- $_line "${2:-all}"
  _LOAD=$1 _ACTIVE=$2 _FILE=$3
  case "$4:$_LOAD:$_ACTIVE:$_FILE" in
    *:not-found:*) return 0 ;;
    file:*:*:\? | active:*:\?:* | all:*\?* | off:\?:*:* | off:*:\?:*) ;;
    *) return 0 ;;
  esac
  # shellcheck disable=SC2046 # (systemd's answer split into its fields on purpose)
  set -- $(_unit_ask "$_u") x not-found inactive -
  _LOAD=$2 _ACTIVE=$3 _FILE=$4
  _UNIT_CACHE="$_u $_LOAD $_ACTIVE $_FILE$NL$_UNIT_CACHE"
}

# ensure_on UNIT: enabled and running.
ensure_on() {
  _track on "$1"
  unit_state "$1" all
  case "$_FILE" in
    enabled | enabled-runtime | static | alias | indirect | generated) ;;
    *)
      changed "enable $1"
      act systemctl enable -q "$1"
      ;;
  esac
  if [ "$_ACTIVE" != active ]; then
    changed "start $1"
    act systemctl start "$1"
  fi
}

# ensure_off UNIT: not running, not enabled (if installed at all).
ensure_off() {
  # (not linked from any *.wants/ or *.requires/ directory: not enabled, which is all this asks)
  _track off "$1"
  unit_state "$1" off
  [ "$_LOAD" = loaded ] || return 0
  if [ "$_ACTIVE" = active ] || [ "$_ACTIVE" = activating ] || [ "$_ACTIVE" = reloading ]; then
    changed "stop $1 (not this node's role)"
    act systemctl stop "$1"
  fi
  case "$_FILE" in
    enabled | enabled-runtime)
      changed "disable $1 (not this node's role)"
      act systemctl disable -q "$1"
      ;;
  esac
}

is_active() {
  unit_state "$1" active
  [ "$_ACTIVE" = active ]
}

# reload UNIT / restart UNIT, only when running (a stopped unit picks the change up on start).
reload_unit() {
  if is_active "$1"; then
    changed "reload $1"
    act systemctl reload "$1"
  fi
}
restart_unit() {
  changed "restart $1"
  act systemctl restart "$1"
}

# ensure_block FILE NAME [LINES] (or < lines): one managed block between BEGIN/END markers, other
# lines untouched. LINES end with a newline.
ensure_block() {
  _track path "$1"
  _file=$1 _name=$2
  if [ $# -ge 3 ]; then _body=$3; else
    _slurp
    _body=$_S
  fi
  _begin="# BEGIN silverlining $_name (managed by silver, do not edit)"
  _end="# END silverlining $_name"
  _have=''
  [ -f "$_file" ] && { _slurp < "$_file"; _have=$_S; }
  # Rebuild the file: lines outside the block as they are, the block where it was (or at the end).
  # (lines split with parameter expansion: no here-document, no byte-at-a-time read)
  _new='' _skip=0 _done=0 _rest=$_have
  while [ -n "$_rest" ]; do
    _l=${_rest%%"$NL"*}
    if [ "$_l" = "$_rest" ]; then _rest=''; else _rest=${_rest#*"$NL"}; fi
    if [ "$_l" = "$_begin" ]; then
      _skip=1
      if [ "$_done" = 0 ]; then _new="$_new$_begin$NL$_body$_end$NL"; _done=1; fi
      continue
    fi
    if [ "$_skip" = 1 ]; then
      [ "$_l" = "$_end" ] && _skip=0
      continue
    fi
    _new="$_new$_l$NL"
  done
  [ "$_done" = 1 ] || _new="$_new$_begin$NL$_body$_end$NL"
  _pending "$1"
  if [ "$_new" != "$_have" ]; then
    changed "$_file: block $_name"
    # shellcheck disable=SC2034 # (read by the layers' setup.sh that need it)
    CHANGED=1
    # Written in place: /etc/hosts may be a bind mount that cannot be replaced.
    # shellcheck disable=SC2016 # (expanded by that sh, from its arguments)
    act sh -c 'printf "%s" "$1" > "$2"' sh "$_new" "$_file"
  fi
}

# firewall_loaded: the rules of /etc/nftables.conf are in the kernel (a flushed ruleset is loaded
# again): silver's tables are there — as the firewall's watcher says, or as nft lists them.
firewall_loaded() {
  _fw_want
  # shellcheck disable=SC2086 # (table names, split on purpose)
  if nft_watch_holds $_want; then return 0; fi
  _fw_listed
  if [ "$_seen" != " $_want" ]; then
    changed "load firewall rules"
    act nft -f /etc/nftables.conf
  fi
}

# _fw_want: silver's tables in _want — its own, and on an app server with instances the table of
# who may answer on their ports, which nftables.conf includes.
_fw_want() {
  _want=silver
  [ ! -f /etc/silverlining/nft.d/listeners.nft ] || _want='silver silver_listeners'
}

# _fw_listed: of _want, the tables nft lists, in _seen (each after a space, in _want's order;
# none when nft cannot say).
_fw_listed() {
  _seen=''
  _t=$(nft list tables 2> /dev/null) || return 0
  for _n in $_want; do
    case "$NL$_t$NL" in *"${NL}table inet $_n$NL"*) _seen="$_seen $_n" ;; esac
  done
}

# The firewall's watcher: what spares the probe its `nft list tables`. A transient unit runs
# `nft monitor destroy tables`, which prints a line for every table removed (a flushed ruleset
# removes them all) and an error line when it lost events. A full run (the base layer, nft_watch_arm)
# starts it where none runs silent, waits until the kernel lists its subscription, then sees
# silver's tables there and records which, with the watcher's process (its id and start time)
# and the boot. While that same process runs, asleep (an event waiting makes it runnable at once),
# and has printed nothing, none of those tables was removed since. Anything else — no record,
# another boot, the watcher gone, busy or with output, a table wanted that it did not see —
# and the probe lists the tables with nft, as without it. Its record is root's, in FP_DIR; its
# output root's too, in /run/silverlining (NFTW_OUT).
NFTW_UNIT=silver-nft-watch.service
NFTW_OUT=/run/silverlining/nftwatch.out
NFT_BIN=/usr/sbin/nft

# _proc_start PID: the process's name (/proc/PID/comm), state and start time (ticks since boot,
# stat's 22nd field) in _PN, _PT, _PS; false when there is no such process. By the shell: stat's
# fields are read after the name's last ") " (a name may hold spaces and parentheses: one of
# "nft) S 1" must not pass for nft); they are a letter and numbers there, nothing a pattern.
_proc_start() {
  _PS='' _PN='' _PT=''
  case "$1" in '' | 0 | *[!0-9]*) return 1 ;; esac
  IFS= read -r _st < "/proc/$1/stat" 2> /dev/null || return 1
  IFS= read -r _PN < "/proc/$1/comm" 2> /dev/null || return 1
  # shellcheck disable=SC2086 # (split on purpose: state, then numbers)
  set -- ${_st##*) }
  _PT=${1:-} _PS=${20:-}
  case "$_PS" in '' | *[!0-9]*) return 1 ;; esac
}

# root_run_dir DIR: DIR (in /run) a folder of root's alone — no link, root's, mode 700 — made when
# missing; false otherwise. Where root keeps its scratch files: a name in the shared /tmp could be
# a planted link.
root_run_dir() {
  [ ! -L "$1" ] || return 1
  # shellcheck disable=SC2174 # (its parent exists: -m applies to the one directory made)
  [ -d "$1" ] || mkdir -p -m 700 "$1" || return 1
  [ -O "$1" ] && chmod 700 "$1"
}

# nft_watch_holds TABLE...: the watcher recorded these tables there and has seen none removed since
# (see above). Reads files, starts no process.
nft_watch_holds() {
  [ -f "$FP_DIR/nftwatch.rec" ] && [ ! -L "$FP_DIR" ] || return 1
  _wb='' _wp='' _ws='' _wt=''
  read -r _wb _wp _ws _wt < "$FP_DIR/nftwatch.rec" || return 1
  _boot=''
  read -r _boot < /proc/sys/kernel/random/boot_id || return 1
  [ -n "$_wb" ] && [ "$_wb" = "$_boot" ] || return 1
  _proc_start "$_wp" || return 1
  [ "$_PN $_PT $_PS" = "nft S $_ws" ] || return 1
  [ -f "$NFTW_OUT" ] && [ ! -s "$NFTW_OUT" ] || return 1
  for _n; do
    case " $_wt " in *" $_n "*) ;; *) return 1 ;; esac
  done
}

# _nft_subscribed PID: the kernel lists a netlink socket of PID's subscribed to nftables' events
# (/proc/net/netlink: protocol 12, netfilter; group 7, NFNLGRP_NFTABLES, bit 0x40).
_nft_subscribed() {
  while read -r _sk _eth _np _ng _rest; do
    if [ "$_eth" != 12 ] || [ "$_np" != "$1" ]; then continue; fi
    case "$_ng" in '' | *[!0-9a-f]*) continue ;; esac
    [ $((0x$_ng & 0x40)) = 0 ] || return 0
  done < /proc/net/netlink
  return 1
}

# nft_watch_arm: (a full run, once the firewall is loaded) the firewall's watcher in place, as above:
# kept when it holds, else started anew and recorded; no record when anything is not as it should be.
nft_watch_arm() {
  [ "$CHECK" != 1 ] && [ -d "$FP_DIR" ] && [ ! -L "$FP_DIR" ] || return 0
  _fw_want
  # shellcheck disable=SC2086 # (table names, split on purpose)
  if nft_watch_holds $_want; then return 0; fi
  rm -f "$FP_DIR/nftwatch.rec"
  systemctl stop "$NFTW_UNIT" > /dev/null 2>&1 || true
  systemctl reset-failed "$NFTW_UNIT" > /dev/null 2>&1 || true
  [ -x "$NFT_BIN" ] && [ -r /proc/net/netlink ] || return 0
  # (its output in root's folder of /run, which no app can fill: a line it could not write there
  # would be an event lost)
  root_run_dir "${NFTW_OUT%/*}" || return 0
  systemd-run --quiet --collect --unit="$NFTW_UNIT" -p StandardOutput="truncate:$NFTW_OUT" -p StandardError=inherit \
    -p MemoryMax=32M "$NFT_BIN" monitor destroy tables > /dev/null 2>&1 || return 0
  _wp=$(systemctl show -p MainPID --value "$NFTW_UNIT" 2> /dev/null) || return 0
  # Subscribed within 2 s, or no record: the probe lists the tables.
  _i=0
  until _nft_subscribed "$_wp"; do
    _i=$((_i + 1))
    [ "$_i" -le 100 ] || return 0
    sleep 0.02
  done
  _proc_start "$_wp" && [ "$_PN" = nft ] || return 0
  _ws=$_PS
  # The tables there now, seen after the subscription: what the watcher would report removed.
  _fw_listed
  _boot=''
  read -r _boot < /proc/sys/kernel/random/boot_id || return 0
  (umask 077 && printf '%s %s %s%s\n' "$_boot" "$_wp" "$_ws" "$_seen" > "$FP_DIR/nftwatch.rec.new") || return 0
  mv -f "$FP_DIR/nftwatch.rec.new" "$FP_DIR/nftwatch.rec"
}

# take_fresh_lock: on a node that had no silver-state when this run began (SILVER_FRESH_STATE), the
# deploy lock the run holds (SILVER_LOCK_TOKEN, _HOLDER, _TTL) is taken at once, before anything
# else is done there: a node is never set up and free for another run (the run's heartbeat
# renews it from then on; see setup-lock.ts).
take_fresh_lock() {
  [ "$CHECK" != 1 ] && [ "${SILVER_FRESH_STATE:-0}" = 1 ] && [ -n "${SILVER_LOCK_TOKEN:-}" ] || return 0
  "$HELPER_BIN/silver-state" lock "$SILVER_LOCK_TOKEN" "$SILVER_LOCK_TTL" "$SILVER_LOCK_HOLDER" > /dev/null 2>&1 || true
}

# repair_instances: on an app server, each app's active instance runs and answers its health
# check, and what an interrupted deploy left running is stopped (silver-deploy repair; skipped
# while a deploy holds the nodeset's lock — but under setup-node's own, SILVER_REPAIR_TOKEN). Where
# all is well (instances_well), repair has nothing to do and is not asked.
repair_instances() {
  [ -x "$HELPER_BIN/silver-deploy" ] || return 0
  if instances_well; then return 0; fi
  _check=''
  [ "$CHECK" != 1 ] || _check=--check
  # shellcheck disable=SC2086 # (no argument at all unless checking)
  _repair=$(SILVER_LOCK_TOKEN=${SILVER_REPAIR_TOKEN:-} "$HELPER_BIN/silver-deploy" repair $_check) || exit 1
  while IFS= read -r _l; do [ -z "$_l" ] || changed "$_l"; done <<EOT
$_repair
EOT
}

# instances_well: nothing on this app server for silver-deploy repair to do — for each app, no
# switch left half done, its active instance running (its invocation link) and answering its
# health check with a 2xx, no other instance running — seen by the shell and one request an app
# (silver-http, as repair asks it). False for anything else (a stop-after under way included),
# which repair then looks at.
APPS_ROOT=/var/lib/silverlining/apps
UNIT_LINKS=/run/systemd/units
instances_well() {
  [ -x "$HELPER_BIN/silver-http" ] && [ -d "$UNIT_LINKS" ] || return 1
  _here=$PWD
  for _ai in "$APPS_ROOT"/*/instances; do
    [ -d "$_ai" ] || continue
    _ad=${_ai%/instances}
    [ ! -e "$_ad/switching" ] || return 1
    _act=-
    if [ -L "$_ad/active" ]; then
      cd -P "$_ad/active" 2> /dev/null || return 1
      _act=${PWD##*/}
      cd "$_here" || return 1
    fi
    for _i in "$_ai"/*; do
      _i=${_i##*/}
      case "$_i" in '*' | *.tmp) continue ;; esac
      if [ "$_i" != "$_act" ]; then
        [ ! -L "$UNIT_LINKS/invocation:silver-$_i.service" ] || return 1
        continue
      fi
      [ -L "$UNIT_LINKS/invocation:silver-$_i.service" ] || return 1
      _port='' _path=''
      { read -r _port < "$_ai/$_i/port" && read -r _path < "$_ai/$_i/health"; } 2> /dev/null || return 1
      _code=$(timeout 3 "$HELPER_BIN/silver-http" "$_port" "$_path" 2> /dev/null) || return 1
      case "$_code" in 2[0-9][0-9]) ;; *) return 1 ;; esac
    done
  done
}

# ensure_backup_schedule: a service node's scheduled backups (the nodeset's `backup =` of its
# section): the copy key, the copy node's host key, backup.conf and the timer that runs
# `silver-backup run`; all removed when the nodeset has no schedule for this service.
# Input: SILVER_BACKUP (1 or 0) and, with 1, SILVER_BACKUP_CALENDAR and SILVER_BACKUP_KEY,
# _KNOWN, _CONF, _SERVICE_UNIT, _TIMER (each with its _MD5).
ensure_backup_schedule() {
  if [ "$SILVER_BACKUP" != 1 ]; then
    ensure_off silver-backup.timer
    for _f in /etc/systemd/system/silver-backup.timer /etc/systemd/system/silver-backup.service /etc/silverlining/backup.conf /etc/silverlining/backup.key /etc/silverlining/backup.known_hosts; do
      ensure_absent "$_f"
    done
    return 0
  fi
  ensure_known /etc/silverlining/backup.key 600 root:root "$SILVER_BACKUP_KEY_MD5" "$SILVER_BACKUP_KEY"
  ensure_known /etc/silverlining/backup.known_hosts 644 root:root "$SILVER_BACKUP_KNOWN_MD5" "$SILVER_BACKUP_KNOWN"
  ensure_known /etc/silverlining/backup.conf 644 root:root "$SILVER_BACKUP_CONF_MD5" "$SILVER_BACKUP_CONF"
  ensure_known /etc/systemd/system/silver-backup.service 644 root:root "$SILVER_BACKUP_SERVICE_UNIT_MD5" "$SILVER_BACKUP_SERVICE_UNIT"
  _units=$CHANGED
  if ! known_same /etc/systemd/system/silver-backup.timer "$SILVER_BACKUP_TIMER_MD5" "$SILVER_BACKUP_TIMER" && [ "$CHECK" != 1 ]; then
    systemd-analyze calendar "$SILVER_BACKUP_CALENDAR" > /dev/null 2>&1 || { echo "backup = $SILVER_BACKUP_CALENDAR: systemd does not read it as a calendar" >&2; exit 1; }
  fi
  ensure_known /etc/systemd/system/silver-backup.timer 644 root:root "$SILVER_BACKUP_TIMER_MD5" "$SILVER_BACKUP_TIMER"
  [ "$CHANGED" = 1 ] && _units=1
  if [ "$_units" = 1 ]; then
    changed "systemctl daemon-reload"
    act systemctl daemon-reload
    # (a changed calendar takes effect on the timer's restart)
    is_active silver-backup.timer && restart_unit silver-backup.timer
  fi
  followed /etc/systemd/system/silver-backup.service /etc/systemd/system/silver-backup.timer "systemctl daemon-reload" "restart silver-backup.timer"
  ensure_on silver-backup.timer
}

# The fast path of a no-op run (the fingerprint). A full run that every layer passes records what
# decided it: the digest of its inputs (the layers' files and variables, which silver computes),
# the time it began, and the state no file shows (units running or not). The next run's probe
# (fast_probe) asks only whether anything changed since: the same inputs, no file under /etc,
# /usr/local/lib/silverlining or root's .ssh (nor dpkg's status, nor any other path a helper
# managed) changed since the run began, the same units up and down, the same boot and no step of
# the clock. Then every check of the full run would pass again, and the layers' probe.sh run
# alone (what no file shows: the firewall loaded, the instances' health). Anything else, or no
# fingerprint: the full run. The fingerprint is removed before a full run changes anything, so a
# run killed at any line leaves none; a check-only run reads it but never writes it. One full run
# at a time takes a node (the lock in fingerprint_begin).
FP_DIR=/var/lib/silverlining/setup
SILVER_TRACK=''

# _track KIND ARG: what a helper checked (path P, unit on U, unit off U), for fingerprint_end.
# (never fails the layer: a record that cannot be written leaves this run no fingerprint)
_track() {
  [ -n "$SILVER_TRACK" ] || return 0
  { printf '%s %s\n' "$1" "$2" >> "$SILVER_TRACK"; } 2> /dev/null || rm -f "$SILVER_TRACK.ok"
}

# _fp_roots: the fingerprint's roots (walked whole) in _roots; of those that are no folder of
# their own, the folder holding them in _rpoints (a point: a root made there is seen).
_fp_roots() {
  _roots='' _rpoints=''
  for _r in /etc /usr/local/lib/silverlining /root/.ssh; do
    if [ -d "$_r" ] && [ ! -L "$_r" ]; then _roots="$_roots $_r"; else _rpoints="$_rpoints ${_r%/*}"; fi
  done
}

# The watcher: what spares the probe its walk of the roots. A transient unit runs inotifywait on
# them, which ends at the first change there (a file written, made, removed, moved, its mode,
# owner or times set); its first line of output names it. A full run starts it before FP_SINCE —
# or keeps the one already running, when it has seen nothing since its watches were in place — so
# while the same one runs, has said nothing and has no event waiting to be read (its process
# asleep), nothing under the roots changed since FP_SINCE that inotify reports. What it does not
# report — a file written through a memory map, or through a hard link or a bind mount of it
# elsewhere — the probe still sees for every path a helper checked there: those stay points of
# its own (FP_WPOINTS). Anything else (no inotifywait, a kernel limit, more folders than it should
# watch, a folder made while its watches were set up, the watcher ended, stopped or started anew
# since): the probe walks the roots, as without it. Its files are root's, in FP_DIR: its output,
# roots, invocation, process, and watch.ok once its watches were found whole.
WATCH_UNIT=silver-setup-watch.service
# (its output in root's folder of /run, which no app can fill: a line it could not write on a full
# disk would be a change unseen)
WATCH_OUT=/run/silverlining/setup-watch.out
WATCH_ERR=/run/silverlining/setup-watch.err
WATCH_BIN=/usr/bin/inotifywait
WATCH_LINK=/run/systemd/units/invocation:$WATCH_UNIT
WATCH_ROOTS=''
# (at most this many folders under the roots: each holds one of the kernel's watches, which root's
# other programs share)
WATCH_MAX_DIRS=4000

# _watch_idle: the watcher runs (its invocation link), has said nothing, and its process
# (watch.pid) is inotifywait, asleep — no event is waiting for it to read (an event queued makes
# it runnable at once). By the shell, without a process.
_watch_idle() {
  [ -L "$WATCH_LINK" ] && [ -f "$WATCH_OUT" ] && [ ! -s "$WATCH_OUT" ] || return 1
  _wp='' _ws=''
  read -r _wp < "$FP_DIR/watch.pid" || return 1
  case "$_wp" in '' | 0 | *[!0-9]*) return 1 ;; esac
  _proc_start "$_wp" && [ "$_PN $_PT" = 'inotifywait S' ]
}

# _watch_ready: the watcher runs — the invocation that was started, on the roots of this run
# (_roots), its watches found whole — has seen nothing and is idle.
_watch_ready() {
  [ -f "$FP_DIR/watch.ok" ] || return 1
  _wr='' _wi=''
  read -r _wr < "$FP_DIR/watch.roots" || return 1
  [ "$_wr" = "${_roots# }" ] || return 1
  read -r _wi < "$FP_DIR/watch.id" || return 1
  [ -n "$_wi" ] && [ "$(readlink "$WATCH_LINK")" = "$_wi" ] || return 1
  _watch_idle
}

# _watch_stop: no watcher, and none of its files.
_watch_stop() {
  systemctl stop "$WATCH_UNIT" > /dev/null 2>&1 || true
  systemctl reset-failed "$WATCH_UNIT" > /dev/null 2>&1 || true
  rm -f "$FP_DIR/watch.ok" "$WATCH_OUT" "$WATCH_ERR" "$FP_DIR/watch.roots" "$FP_DIR/watch.id" "$FP_DIR/watch.pid"
}

# _watch_begin: (fingerprint_begin, before FP_SINCE) the watcher of _roots, in place; WATCH_ROOTS
# names them, or is empty when there is none.
_watch_begin() {
  WATCH_ROOTS=''
  [ -n "$_roots" ] && [ -x "$WATCH_BIN" ] || return 0
  if _watch_ready 2> /dev/null; then
    WATCH_ROOTS=$_roots
    return 0
  fi
  _watch_stop
  # shellcheck disable=SC2086 # (the roots, split on purpose: no space, no pattern)
  [ "$(find $_roots -type d 2> /dev/null | wc -l)" -le "$WATCH_MAX_DIRS" ] || return 0
  printf '%s\n' "${_roots# }" > "$FP_DIR/watch.roots"
  # (what changes from here on, less the file system's clock step, is newer than this)
  _ns=$(($(date +%s%N) - 50000000))
  _w0=${_ns%?????????}.${_ns#"${_ns%?????????}"}
  root_run_dir "${WATCH_OUT%/*}" || return 0
  # shellcheck disable=SC2086
  systemd-run --quiet --collect --unit="$WATCH_UNIT" -p StandardOutput="truncate:$WATCH_OUT" -p StandardError="truncate:$WATCH_ERR" \
    -p MemoryMax=64M "$WATCH_BIN" -r -e modify,attrib,move,create,delete,delete_self,move_self,unmount -- $_roots > /dev/null 2>&1 || return 0
  readlink "$WATCH_LINK" > "$FP_DIR/watch.id" 2> /dev/null || true
  systemctl show -p MainPID --value "$WATCH_UNIT" > "$FP_DIR/watch.pid" 2> /dev/null || true
  # Its watches in place within 10 s, or none: the probe walks.
  _i=0 _we=''
  while [ -z "$_we" ]; do
    # (the unit opens its output as it starts, which may be after systemd-run returns; a
    # redirection that fails would end this shell)
    if [ -f "$WATCH_ERR" ]; then
      while IFS= read -r _l; do
        [ "$_l" != 'Watches established.' ] || _we=1
      done < "$WATCH_ERR"
    fi
    [ -n "$_we" ] && break
    _i=$((_i + 1))
    if [ "$_i" -gt 500 ] || [ ! -L "$WATCH_LINK" ]; then
      _watch_stop
      return 0
    fi
    sleep 0.02
  done
  # A folder made while the watches were set up may have none of its own (inotifywait passes over
  # what it cannot watch, too): anything changed since it started, and this run has no watcher.
  # shellcheck disable=SC2086
  if [ -n "$(find $_roots -newerct "@$_w0" -print -quit 2> /dev/null)" ]; then
    _watch_stop
    return 0
  fi
  : > "$FP_DIR/watch.ok"
  _watch_ready 2> /dev/null || { _watch_stop; return 0; }
  WATCH_ROOTS=$_roots
}

# fingerprint_begin: at the start of a full run, before any change.
fingerprint_begin() {
  [ "$CHECK" != 1 ] || return 0
  [ ! -L "$FP_DIR" ] || { echo "$FP_DIR is a symbolic link" >&2; exit 1; }
  # shellcheck disable=SC2174 # (-m is meant for the fingerprint's folder alone)
  mkdir -p -m 700 "$FP_DIR"
  # One full run at a time on this node (another waits; a dry run takes no lock): what one run
  # lists as pending (layer_begin) no other can take as done meanwhile.
  exec 7> "$FP_DIR/lock"
  flock -w 900 7 || { echo "another silver setup-node has run on this node for 15 minutes: try again later" >&2; exit 1; }
  rm -f "$FP_DIR/fingerprint"
  # This run's record of what its helpers checked (the lock makes it the only one).
  SILVER_TRACK=$FP_DIR/track
  : > "$SILVER_TRACK"
  : > "$SILVER_TRACK.ok"
  # (a walk like the probe's first: a file system may note a folder's first reading in its change
  # time, as an overlay does, and that must not count as a change)
  _fp_roots
  # shellcheck disable=SC2086 # (the roots, split on purpose: no space, no pattern)
  find $_roots -ctime -1 -name '' > /dev/null 2>&1 || true
  # (the watcher's watches in place before the time this run began)
  _watch_begin
  # The boot time as the clock has it, now (a step of the clock from here on is seen), and the
  # time this run began as the next probe compares: 10 ms after now, then 30 ms of wait (the
  # kernel's file times are coarser than its clock), so that the walk above is older and
  # whatever changes from here on newer; where the file system keeps whole seconds only (this
  # run's new record says so), a whole second, one before now. (What this run changes itself is
  # seen by the next probe, which then runs in full once more.)
  _btime || _BT=''
  FP_BTIME=$_BT
  _ns=$(date +%s%N)
  FP_WALL=${_ns%?????????}
  case "$(stat -c %y "$SILVER_TRACK")" in
    *.000000000*) FP_SINCE=$((FP_WALL - 1)) ;;
    *)
      _ns=$((_ns + 10000000))
      FP_SINCE=${_ns%?????????}.${_ns#"${_ns%?????????}"}
      sleep 0.03
      ;;
  esac
}

# _btime: the boot time as the wall clock has it now (/proc/stat's btime, whole seconds) in _BT; false
# when the kernel gives none. A step of the clock moves it by the step (the clock's slewing moves
# the time since boot alike, and not it): two readings apart tell of a step between them. Read
# by the shell, without a process.
_btime() {
  _BT=''
  while read -r _k _v; do
    case "$_k" in btime) _BT=$_v ;; *) continue ;; esac
    case "$_BT" in '' | *[!0-9]*) _BT='' && return 1 ;; esac
    return 0
  done < /proc/stat
  return 1
}

# _fp_add VAR WORD: WORD added to the list in VAR, once.
_fp_add() {
  _fp_l=''
  eval "_fp_l=\$$1"
  case " $_fp_l " in *" $2 "*) ;; *) eval "$1=\"\$_fp_l \$2\"" ;; esac
}

# _units_in WANT UNIT...: systemd says, for each unit, one of the states WANT lists ("active",
# or "off": not running); one systemctl call for all.
_units_in() {
  _want=$1
  shift
  _a=$(systemctl is-active "$@" 2> /dev/null) || true
  _n=0
  for _w in $_a; do
    _n=$((_n + 1))
    case "$_want:$_w" in active:active | off:inactive | off:failed | off:unknown) ;; *) return 1 ;; esac
  done
  # (one answer for each unit)
  [ "$_n" -eq $# ]
}

# _fp_unit on|off UNIT: where the probe will look for this unit's state; false when the unit is
# not as this run wanted it (then no fingerprint).
_fp_unit() {
  _u=$2
  case "$_u" in *.*) ;; *) _u="$_u.service" ;; esac
  _unit_fast "$_u"
  case "$1:$_LOAD:$_ACTIVE" in
    off:not-found:*) ;;
    on:loaded:active) _fp_add _live "$_u" ;;
    off:loaded:inactive) _fp_add _dead "$_u" ;;
    on:*:\?)
      # (confirmed by systemd below; then the probe watches its invocation link where there is
      # one — gone when it stops, made anew when it starts again, its own start-up loops
      # included — and asks systemd about the others: a oneshot unit that remains has neither
      # process nor control group)
      _fp_add _ask_on "$_u"
      if [ -L "/run/systemd/units/invocation:$_u" ]; then _fp_add _linked "$_u"; fi
      ;;
    off:*:\?) _fp_add _ask_off "$_u" ;;
    *) return 1 ;;
  esac
}

# fingerprint_end DIGEST: after every layer passed, the fingerprint of this run (none when
# anything is not as it should be).
fingerprint_end() {
  [ -n "$SILVER_TRACK" ] && [ -f "$SILVER_TRACK" ] && [ -f "$SILVER_TRACK.ok" ] || return 0
  _fp_digest=$1
  _fp_roots
  _points="/var/lib/dpkg/status /var/lib/dpkg/updates$_rpoints" _wpoints='' _absent='' _live='' _linked='' _dead='' _ask_on='' _ask_off='' _dirs=''
  while read -r _fk _fp _fm _fo; do
    # (names the probe reads unquoted: a path with any other character leaves no fingerprint)
    case "$_fp" in '' | *[!A-Za-z0-9._/@:+-]*) return 0 ;; esac
    # (a mode of digits and an owner user:group of names for a data folder; nothing more for the others)
    if [ "$_fk" = dir ]; then
      case "$_fm" in [0-7][0-7][0-7] | [0-7][0-7][0-7][0-7]) ;; *) return 0 ;; esac
      case "$_fo" in *[!a-z0-9_:-]* | *:*:* | :* | *:) return 0 ;; *:*) ;; *) return 0 ;; esac
    elif [ -n "$_fm$_fo" ]; then
      return 0
    fi
    case "$_fk" in
      path | dir)
        # (a path reached through a link, or a link itself, is not what find watches)
        [ ! -L "$_fp" ] || return 0
        if [ -d "${_fp%/*}" ]; then
          _here=$PWD
          cd -P "${_fp%/*}" || return 0
          _real=$PWD
          cd "$_here" || return 0
          [ "$_real" = "${_fp%/*}" ] || return 0
        fi
        _under=0
        for _r in $_roots; do case "$_fp" in "$_r" | "$_r"/*) _under=1 ;; esac; done
        # (under a watched root the walk sees it, as any path there; the watcher does not see
        # every change, so with it the probe looks at this path itself)
        if [ "$_under" = 1 ]; then
          if [ -e "$_fp" ]; then _fp_add _wpoints "$_fp"; fi
          continue
        fi
        if [ "$_fk" = dir ]; then
          [ -d "$_fp" ] || return 0
          case " $_dirs " in *" $_fp "*) ;; *) _dirs="$_dirs $_fp $_fm ${_fo%%:*} ${_fo#*:}" ;; esac
        elif [ -e "$_fp" ] || [ -L "$_fp" ]; then _fp_add _points "$_fp"; else _fp_add _absent "$_fp"; fi
        ;;
      on | off) _fp_unit "$_fk" "$_fp" || return 0 ;;
      *) return 0 ;;
    esac
  done < "$SILVER_TRACK"
  # shellcheck disable=SC2086 # (unit names, split on purpose)
  [ -z "$_ask_on" ] || _units_in active $_ask_on || return 0
  # shellcheck disable=SC2086
  [ -z "$_ask_off" ] || _units_in off $_ask_off || return 0
  _probe_ask=''
  for _u in $_ask_on; do
    case " $_linked " in
      *" $_u "*) _fp_add _points "/run/systemd/units/invocation:$_u" ;;
      *) _probe_ask="$_probe_ask $_u" ;;
    esac
  done
  # (a data folder that another helper watches whole stays a point: the stricter watch)
  _keep=''
  # shellcheck disable=SC2086 # (four words an entry, checked above)
  set -- $_dirs
  while [ $# -ge 4 ]; do
    case " $_points " in *" $1 "*) ;; *) _keep="$_keep $1 $2 $3 $4" ;; esac
    shift 4
  done
  _boot=''
  read -r _boot < /proc/sys/kernel/random/boot_id || return 0
  [ -n "$FP_BTIME" ] && [ -f "$SILVER_TRACK.ok" ] || return 0
  # (the watcher of these same roots, still running, that has seen nothing: none when it has
  # seen this run's own changes)
  _watch=0
  [ -z "$WATCH_ROOTS" ] || [ "$WATCH_ROOTS" != "$_roots" ] || ! _watch_ready 2> /dev/null || _watch=1
  (umask 077 && printf 'FP_DIGEST=%s\nFP_SINCE=%s\nFP_ROOTS="%s"\nFP_POINTS="%s"\nFP_DIRS="%s"\nFP_ABSENT="%s"\nFP_LIVE="%s"\nFP_DEAD="%s"\nFP_ASK_ON="%s"\nFP_ASK_OFF="%s"\nFP_BOOT=%s\nFP_BTIME=%s\nFP_WATCH=%s\nFP_WPOINTS="%s"\nFP_END=1\n' \
    "$_fp_digest" "$FP_SINCE" "$_roots" "$_points" "$_keep" "$_absent" "$_live" "$_dead" "$_probe_ask" "$_ask_off" "$_boot" "$FP_BTIME" "$_watch" "$_wpoints" > "$FP_DIR/fingerprint.new") || { rm -f "$FP_DIR/fingerprint.new"; return 0; }
  rm -f "$SILVER_TRACK" "$SILVER_TRACK.ok"
  mv -f "$FP_DIR/fingerprint.new" "$FP_DIR/fingerprint"
}

# fast_probe DIGEST: true when the fingerprint holds (see above); reads it, changes nothing.
# DIGEST '*': whatever inputs the last full run had (FP_DIGEST says which: silver compares).
# When not, _MISS says why, in words of this script's own (never a path: a name can hold
# anything, a line break among it).
fast_probe() {
  _MISS='no fingerprint'
  [ -f "$FP_DIR/fingerprint" ] && [ ! -L "$FP_DIR" ] || return 1
  # (a full run's work left undone — follow-ups listed, a key's processes to end — is a full
  # run's to finish)
  _MISS='an earlier run left work undone'
  for _p in "$FP_DIR"/dirty.* "$FP_DIR/keys-removed"; do
    if [ -e "$_p" ]; then return 1; fi
  done
  FP_DIGEST='' FP_SINCE='' FP_ROOTS='' FP_POINTS='' FP_DIRS='' FP_ABSENT='' FP_LIVE='' FP_DEAD='' FP_ASK_ON='' FP_ASK_OFF='' FP_BOOT='' FP_BTIME='' FP_WATCH='' FP_WPOINTS='' FP_END=''
  # (root's file in root's own folder, its values checked when written)
  # shellcheck disable=SC1091
  . "$FP_DIR/fingerprint"
  [ "$FP_END" = 1 ] || return 1
  _MISS='new inputs'
  [ "$1" = '*' ] || [ "$FP_DIGEST" = "$1" ] || return 1
  case "$FP_DIGEST" in *[!0-9a-f]* | '') return 1 ;; esac
  _MISS='a reboot or a step of the clock'
  _boot=''
  read -r _boot < /proc/sys/kernel/random/boot_id || return 1
  [ "$_boot" = "$FP_BOOT" ] || return 1
  case "$FP_BTIME" in '' | *[!0-9]*) return 1 ;; esac
  _btime || return 1
  _skew=$((_BT - FP_BTIME))
  [ "$_skew" -le 2 ] && [ "$_skew" -ge -2 ] || return 1
  _MISS='a path that must not be there is'
  for _p in $FP_ABSENT; do
    if [ -e "$_p" ] || [ -L "$_p" ]; then return 1; fi
  done
  _MISS='a unit is not running'
  for _u in $FP_LIVE; do
    _unit_fast "$_u"
    [ "$_ACTIVE" = active ] || return 1
  done
  _MISS='a unit is running'
  for _u in $FP_DEAD; do
    _unit_fast "$_u"
    [ "$_ACTIVE" = inactive ] || return 1
  done
  _MISS='a unit changed state'
  # shellcheck disable=SC2086 # (unit names, split on purpose)
  [ -z "$FP_ASK_ON" ] || _units_in active $FP_ASK_ON || return 1
  # shellcheck disable=SC2086
  [ -z "$FP_ASK_OFF" ] || _units_in off $FP_ASK_OFF || return 1
  # Whatever changed since the last full run began (the first such path), or a watched path gone;
  # a data folder (ensure_data_dir) that is no longer a folder of its mode and owner, whatever
  # was written in it.
  set --
  _i=0 _starts=''
  # shellcheck disable=SC2086 # (four words an entry, checked when written)
  for _w in $FP_DIRS; do
    case $_i in
      0) _dp=$_w ;;
      1) _dm=$_w ;;
      2) _du=$_w ;;
      *)
        set -- "$@" -path "$_dp" -prune \( -type d -perm "$_dm" -user "$_du" -group "$_w" -o -print -quit \) -o
        _starts="$_starts $_dp"
        ;;
    esac
    _i=$(((_i + 1) % 4))
  done
  set -- "$@" \( -newerct "@$FP_SINCE" -print -quit \) -o \(
  # The roots walked whole — or, while the watcher the last full run recorded runs, has seen
  # nothing and is idle, not walked: the paths a helper checked there, and its invocation link
  # (made anew, newer, if it started again), points instead
  _walk=$FP_ROOTS _link=''
  if [ "$FP_WATCH" = 1 ] && _watch_idle; then _walk='' _link="$WATCH_LINK $FP_WPOINTS"; fi
  for _r in $_walk; do set -- "$@" -path "$_r" -o -path "$_r/*" -o; done
  _MISS='a watched path is gone'
  # shellcheck disable=SC2086 # (paths checked when written: no space, no pattern)
  _new=$(find $_walk $FP_POINTS $_link $_starts "$@" -false \) -o -prune 2> /dev/null) || return 1
  _MISS='a file changed'
  [ -z "$_new" ]
}
