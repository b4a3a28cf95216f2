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

# ensure_file PATH MODE OWNER:GROUP  < content
ensure_file() {
  _path=$1 _mode=$2 _owner=$3
  _tmp=$(mktemp)
  cat > "$_tmp"
  CHANGED=0
  if [ -f "$_path" ] && cmp -s "$_tmp" "$_path"; then
    if [ "$(stat -c '%a %U:%G' "$_path")" != "$_mode $_owner" ]; then
      changed "$_path: mode $_mode, owner $_owner"
      act chmod "$_mode" "$_path"
      act chown "$_owner" "$_path"
      CHANGED=1
    fi
    rm -f "$_tmp"
    return 0
  fi
  changed "$_path"
  CHANGED=1
  if [ "$CHECK" = 1 ]; then rm -f "$_tmp"; return 0; fi
  mkdir -p "$(dirname "$_path")"
  chmod "$_mode" "$_tmp"
  chown "$_owner" "$_tmp"
  mv -f "$_tmp" "$_path"
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
  elif [ "$(stat -c '%a %U:%G' "$1")" != "$2 $3" ]; then
    changed "$1: mode $2, owner $3"
    act chmod "$2" "$1"
    act chown "$3" "$1"
    CHANGED=1
  fi
}

# ensure_pkgs PACKAGE...
ensure_pkgs() {
  CHANGED=0
  [ $# -gt 0 ] || return 0
  _have=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null | awk '$2 == "installed" { print $1 }')
  _missing=""
  for _p in "$@"; do
    case " $(echo $_have) " in *" $_p "*) ;; *) _missing="$_missing $_p" ;; esac
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
  _line=$(printf '%s\n' "$_UNIT_CACHE" | awk -v u="$_u" '$1 == u { print; exit }')
  if [ -z "$_line" ]; then
    _line=$(systemctl show --property=Id,LoadState,ActiveState,UnitFileState "$_u" 2> /dev/null | awk -F= '
      /^LoadState=/ { ld = $2 } /^ActiveState=/ { act = $2 } /^UnitFileState=/ { uf = $2 }
      END { print "x", ld, act, (uf == "" ? "-" : uf) }')
  fi
  set -- $_line
  _LOAD=${2:-not-found} _ACTIVE=${3:-inactive} _FILE=${4:--}
}

# Forget a unit's cached state after changing it.
unit_forget() {
  _UNIT_CACHE=$(printf '%s\n' "$_UNIT_CACHE" | awk -v u="$1.service" '$1 != u')
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
  unit_forget "$1"
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
  unit_forget "$1"
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
  _body=$(mktemp)
  cat > "$_body"
  _new=$(mktemp)
  _begin="# BEGIN silverlining $_name (managed by silver, do not edit)"
  _end="# END silverlining $_name"
  touch "$_file"
  awk -v b="$_begin" -v e="$_end" -v body="$_body" '
    $0 == b { skip = 1; if (!done) { print b; while ((getline l < body) > 0) print l; print e; done = 1 }; next }
    $0 == e { skip = 0; next }
    !skip { print }
    END { if (!done) { print b; while ((getline l < body) > 0) print l; print e } }
  ' "$_file" > "$_new"
  rm -f "$_body"
  CHANGED=0
  if ! cmp -s "$_new" "$_file"; then
    changed "$_file: block $_name"
    CHANGED=1
    # Written in place: /etc/hosts may be a bind mount that cannot be replaced.
    act sh -c 'cat "$1" > "$2"' sh "$_new" "$_file"
  fi
  rm -f "$_new"
}
