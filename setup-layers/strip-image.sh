#!/bin/sh
# silver image bake, on a cloud builder node (as root, the script on standard input):
#   sh -s -- ROOT PATTERN...
# removes what the patterns (STRIP in src/image/strip.ts) name under ROOT: a pattern ending in
# / empties that folder (it stays, with its owner and mode), any other one goes; * matches
# within one name. Then the machine id is emptied (a node made from the image gets its own at
# first boot) and the disks are synced for the snapshot. The local provider strips its copy the
# same way in TypeScript (providers/local/image.ts); a test runs both on one tree.
set -eu
root=${1%/}
shift
# No field splitting: a pattern's * is expanded, nothing else.
IFS=''
for pattern in "$@"; do
  case $pattern in
    /* | *..* | '') echo "strip-image: refusing the pattern \"$pattern\"" >&2; exit 2 ;;
  esac
  case $pattern in
    */)
      # shellcheck disable=SC2086 # the pattern's * is meant to expand
      for dir in $root/${pattern%/}; do
        if [ -d "$dir" ] && [ ! -L "$dir" ]; then find "$dir" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} +; fi
      done
      ;;
    *)
      # shellcheck disable=SC2086 # the pattern's * is meant to expand
      for path in $root/$pattern; do
        if [ -e "$path" ] || [ -L "$path" ]; then rm -rf -- "$path"; fi
      done
      ;;
  esac
done
if [ -e "$root/etc/machine-id" ]; then : > "$root/etc/machine-id"; fi
sync
