# lib.sh — helpers every setup layer uses; silver sends it ahead of the layer's setup.sh.
# Every helper checks before it changes. A change is reported on stdout as
#   silver-changed: WHAT          (or, with SILVER_CHECK=1, as  silver-would: WHAT  and nothing is done)
# Helpers that can change something set CHANGED=1 when they did (or would), else CHANGED=0.
set -eu
umask 022
export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C
CHECK=${SILVER_CHECK:-0}

changed() {
  if [ "$CHECK" = 1 ]; then echo "silver-would: $*"; else echo "silver-changed: $*"; fi
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

# prestat PATH...: remembers "mode owner:group" of these paths (missing ones are left out).
_STAT="$NL"
prestat() {
  _STAT="$NL$(stat -c '%n %a %U:%G' "$@" 2> /dev/null || true)$NL"
}

# stat_of PATH: sets _ST to "mode owner:group" (empty when the path does not exist).
stat_of() {
  case "$_STAT" in
    *"$NL$1 "*)
      _ST=${_STAT#*"$NL$1 "}
      _ST=${_ST%%"$NL"*}
      ;;
    *) _ST=$(stat -c '%a %U:%G' "$1" 2> /dev/null || true) ;;
  esac
}

# ensure_file PATH MODE OWNER:GROUP  < content
ensure_file() {
  _path=$1 _mode=$2 _owner=$3
  _slurp
  _want=$_S
  CHANGED=0
  if [ -f "$_path" ]; then
    _slurp < "$_path"
    if [ "$_S" = "$_want" ]; then
      stat_of "$_path"
      if [ "$_ST" != "$_mode $_owner" ]; then
        changed "$_path: mode $_mode, owner $_owner"
        act chmod "$_mode" "$_path"
        act chown "$_owner" "$_path"
        CHANGED=1
      fi
      return 0
    fi
  fi
  changed "$_path"
  CHANGED=1
  [ "$CHECK" = 1 ] && return 0
  mkdir -p "${_path%/*}"
  printf '%s' "$_want" > "$_path.silver-new"
  chmod "$_mode" "$_path.silver-new"
  chown "$_owner" "$_path.silver-new"
  mv -f "$_path.silver-new" "$_path"
}

# ensure_absent PATH
ensure_absent() {
  CHANGED=0
  if [ -e "$1" ] || [ -L "$1" ]; then
    changed "remove $1"
    act rm -f "$1"
    CHANGED=1
  fi
}

# ensure_dir PATH MODE OWNER:GROUP
ensure_dir() {
  CHANGED=0
  if [ ! -d "$1" ]; then
    changed "directory $1"
    act install -d -m "$2" -o "${3%%:*}" -g "${3##*:}" "$1"
    CHANGED=1
    return 0
  fi
  stat_of "$1"
  if [ "$_ST" != "$2 $3" ]; then
    changed "$1: mode $2, owner $3"
    act chmod "$2" "$1"
    act chown "$3" "$1"
    CHANGED=1
  fi
}

# pkg_cache PACKAGE...: remembers which of these are installed (one dpkg-query for many layers).
_PKGS=""
_PKGS_KNOWN=""
pkg_cache() {
  [ $# -gt 0 ] || return 0
  _PKGS="$_PKGS $(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2> /dev/null | awk '$2 == "installed" { printf "%s ", $1 }')"
  _PKGS_KNOWN="$_PKGS_KNOWN $* "
}

# ensure_pkgs PACKAGE...
ensure_pkgs() {
  CHANGED=0
  [ $# -gt 0 ] || return 0
  _uncached=""
  for _p in "$@"; do
    case "$_PKGS_KNOWN" in *" $_p "*) ;; *) _uncached="$_uncached $_p" ;; esac
  done
  [ -z "$_uncached" ] || pkg_cache $_uncached
  _missing=""
  for _p in "$@"; do
    case "$_PKGS" in *" $_p "*) ;; *) _missing="$_missing $_p" ;; esac
  done
  [ -n "$_missing" ] || return 0
  changed "install$_missing"
  CHANGED=1
  [ "$CHECK" = 1 ] && return 0
  if ! apt-get install -y -q --no-install-recommends $_missing > /tmp/silver-apt.log 2>&1; then
    apt-get update -q > /tmp/silver-apt-update.log 2>&1 || true
    apt-get install -y -q --no-install-recommends $_missing > /tmp/silver-apt.log 2>&1 || { tail -5 /tmp/silver-apt.log >&2; return 1; }
  fi
}

# ensure_user NAME HOME [SHELL]
ensure_user() {
  CHANGED=0
  if ! id -u "$1" > /dev/null 2>&1; then
    changed "user $1"
    act useradd --system --create-home --home-dir "$2" --shell "${3:-/usr/sbin/nologin}" --user-group "$1"
    CHANGED=1
  fi
}

# Unit states, one systemctl call for many units: unit_cache UNIT.service...
# Lines "ID LOADSTATE ACTIVESTATE UNITFILESTATE"; helpers below read it, or ask systemd for one unit.
_UNIT_CACHE=""
unit_cache() {
  _UNIT_CACHE=$(systemctl show --property=Id,LoadState,ActiveState,UnitFileState "$@" 2> /dev/null | awk -F= '
    /^Id=/ { id = $2 } /^LoadState=/ { ld = $2 } /^ActiveState=/ { act = $2 } /^UnitFileState=/ { uf = $2 }
    /^$/ { if (id != "") print id, ld, act, (uf == "" ? "-" : uf); id = ""; ld = ""; act = ""; uf = "" }
    END { if (id != "") print id, ld, act, (uf == "" ? "-" : uf) }')
}

# unit_state UNIT: sets _LOAD, _ACTIVE, _FILE (from the cache when it has the unit).
unit_state() {
  _u=$1
  case "$_u" in *.*) ;; *) _u="$_u.service" ;; esac
  case "$NL$_UNIT_CACHE$NL" in
    *"$NL$_u "*)
      _line=${_UNIT_CACHE#*"$_u "}
      _line="x ${_line%%"$NL"*}"
      ;;
    *)
      _line=$(systemctl show --property=Id,LoadState,ActiveState,UnitFileState "$_u" 2> /dev/null | awk -F= '
        /^LoadState=/ { ld = $2 } /^ActiveState=/ { act = $2 } /^UnitFileState=/ { uf = $2 }
        END { print "x", ld, act, (uf == "" ? "-" : uf) }')
      ;;
  esac
  set -- $_line
  _LOAD=${2:-not-found} _ACTIVE=${3:-inactive} _FILE=${4:--}
}

# ensure_on UNIT: enabled and running.
ensure_on() {
  unit_state "$1"
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
  unit_state "$1"
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
  unit_state "$1"
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

# ensure_block FILE NAME < lines: one managed block between BEGIN/END markers, other lines untouched.
ensure_block() {
  _file=$1 _name=$2
  _slurp
  _body=$_S
  _begin="# BEGIN silverlining $_name (managed by silver, do not edit)"
  _end="# END silverlining $_name"
  _have=''
  [ -f "$_file" ] && { _slurp < "$_file"; _have=$_S; }
  # Rebuild the file: lines outside the block as they are, the block where it was (or at the end).
  _new='' _skip=0 _done=0
  while IFS= read -r _l || [ -n "$_l" ]; do
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
  done << SILVER_BLOCK_EOF
$_have
SILVER_BLOCK_EOF
  # The here-document adds one empty line at the end: drop it.
  _new=${_new%"$NL"}
  [ "$_done" = 1 ] || _new="$_new$_begin$NL$_body$_end$NL"
  CHANGED=0
  if [ "$_new" != "$_have" ]; then
    changed "$_file: block $_name"
    CHANGED=1
    # Written in place: /etc/hosts may be a bind mount that cannot be replaced.
    act sh -c 'printf "%s" "$1" > "$2"' sh "$_new" "$_file"
  fi
}
