#!/usr/bin/env bash
# The Debian package end to end (ctest label "package"): ./dev package builds
# build-pkg/hoist_<version>_amd64.deb; its control fields and contents are
# checked, it is unpacked with dpkg -x into a root that holds nothing but
# libc6's files, and the hoist in it runs there (chroot): --version, --help,
# doctor, a real run against SQLite. Then hoist(1) is read with man -l and
# the bash and zsh completions are exercised.
# Usage: deb_test.sh SOURCE_DIR VERSION      Exit 77: skipped (never under CI=true).
set -euo pipefail
src=$1 version=$2

fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
check() {  # check WHAT GOT WANT
  if [ "$2" != "$3" ]; then fail "$1: got '$2', want '$3'"; fi
}
contains() {  # contains WHAT HAYSTACK NEEDLE
  case "$2" in *"$3"*) ;; *) fail "$1: '$3' not in: $2" ;; esac
}
skip() {
  if [ "${CI:-}" = true ]; then echo "FAIL (CI=true, no skipping): $*" >&2; exit 1; fi
  echo "SKIPPED: $*" >&2
  exit 77
}

for tool in dpkg-deb dpkg readelf chroot man zsh shellcheck; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (./dev deps installs it)"
done
[ "$(id -u)" -eq 0 ] || skip "needs root: the unpacked package runs in a chroot holding only libc6"

tmp=$(mktemp -d /tmp/hoist-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# --- build (cached: a second run only re-packs)
start=$SECONDS
"$src/dev" package >"$tmp/package.log" 2>&1 || { cat "$tmp/package.log" >&2; fail "./dev package failed"; exit 1; }
deb=$src/build-pkg/hoist_${version}_amd64.deb
[ -f "$deb" ] || { fail "no $deb after ./dev package"; exit 1; }
echo "built $deb ($(du -h "$deb" | cut -f1)) in $((SECONDS - start)) s"

# --- control fields
field() { dpkg-deb --field "$deb" "$1"; }
check Package "$(field Package)" hoist
check Version "$(field Version)" "$version"
check Architecture "$(field Architecture)" amd64
depends=$(field Depends)
[[ $depends =~ ^libc6\ \(\>=\ [0-9.]+\)$ ]] || fail "Depends: '$depends', want only libc6 (>= x.y)"
contains Recommends "$(field Recommends)" "libcurl4"
contains Recommends "$(field Recommends)" "libpq5"
contains Suggests "$(field Suggests)" "nginx"
dpkg-deb --info "$deb" >/dev/null || fail "dpkg-deb --info fails"

# --- contents: path, mode, owner
contents=$(dpkg-deb --contents "$deb")
for want in \
  "-rwxr-xr-x root/root ./usr/bin/hoist" \
  "-rw-r--r-- root/root ./usr/share/man/man1/hoist.1.gz" \
  "-rw-r--r-- root/root ./usr/share/bash-completion/completions/hoist" \
  "-rw-r--r-- root/root ./usr/share/zsh/vendor-completions/_hoist" \
  "-rw-r--r-- root/root ./usr/share/doc/hoist/README.md" \
  "-rw-r--r-- root/root ./usr/share/doc/hoist/copyright" \
  "-rw-r--r-- root/root ./usr/share/doc/hoist/cli.md"; do
  mode_owner=${want%% ./*} path=./${want#* ./}
  line=$(awk -v p="$path" '$6 == p { print $1 " " $2 }' <<<"$contents")
  check "contents $path" "$line" "$mode_owner"
done

# --- a root with libc6 alone, and the package unpacked into it
root=$tmp/root
mkdir -p "$root/tmp" "$root/proj"
chmod 1777 "$root/tmp"
while IFS= read -r f; do
  if [ -L "$f" ] && [ -d "$f" ]; then  # merged /usr: /lib64 -> usr/lib64
    cp -dp "$f" "$root$f"
    mkdir -p "$root${f%/*}/$(readlink "$f")"
  elif [ -d "$f" ]; then
    mkdir -p "$root$f"
  else
    cp -dp "$f" "$root$f"
  fi
done < <(dpkg -L libc6)
dpkg -x "$deb" "$root"
hoist=$root/usr/bin/hoist

needed=$(readelf -d "$hoist" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
for lib in $needed; do
  case $lib in
    libc.so.6 | libm.so.6 | ld-linux-x86-64.so.2 | libpthread.so.0 | libdl.so.2 | librt.so.1) ;;
    *) fail "NEEDED $lib: not from libc6 (all NEEDED: $needed)" ;;
  esac
done
readelf -S "$hoist" | grep -q '\.debug_info' && fail "the packaged binary is not stripped"

# In the chroot: no shell, no sqlite3, no libcurl/libpq, only libc6.
chroot=$(command -v chroot)
in_root() { env -i PATH=/usr/bin:/bin HOME=/proj HOIST_OPERATOR=tester "$chroot" "$root" "$@"; }
check "--version" "$(in_root /usr/bin/hoist --version)" "hoist $version"
help=$(in_root /usr/bin/hoist --help)
contains "--help" "$help" "Subcommands:"
contains "--help" "$help" "completions"

cat >"$root/proj/hoist.lua" <<'LUA'
return {
  environments = { default = { database = "sqlite:data/app.db" } },
}
LUA
mkdir -p "$root/proj/playbooks" "$root/proj/data"
cat >"$root/proj/playbooks/greet.lua" <<'LUA'
local hoist = require "hoist"
local db = require "hoist.db"
return hoist.playbook {
  name = "greet", version = "1.0.0", summary = "writes one greeting into SQLite",
  params = {
    who = { type = "string", required = true, help = "whom to greet" },
    tone = { type = "enum", values = { "warm", "cold" }, default = "warm" },
  },
  run = function(run, p)
    run:step("greet", function()
      local conn <close> = db.open("sqlite:/proj/data/app.db", { create = true })
      conn:exec("CREATE TABLE IF NOT EXISTS greetings (who TEXT, tone TEXT)")
      conn:exec("INSERT INTO greetings VALUES (?, ?)", p.who, p.tone)
      return conn:query("SELECT count(*) AS n FROM greetings")[1].n
    end)
  end,
}
LUA

rc=0
doctor=$(in_root /usr/bin/hoist -C /proj --no-color doctor 2>&1) || rc=$?
check "doctor exit code (output: $doctor)" "$rc" 0
echo "doctor on a libc6-only root:"
while IFS= read -r line; do echo "  $line"; done <<<"$doctor"
contains doctor "$doctor" "nginx: not on PATH: needed to switch traffic"
contains doctor "$doctor" "libcurl.so.4: not installed: needed for HTTP"
contains doctor "$doctor" "(apt-get install libpq5)"

rc=0
out=$(in_root /usr/bin/hoist -C /proj --no-color greet -e who=ops -e tone=cold 2>&1) || rc=$?
check "run greet exit code (output: $out)" "$rc" 0
if command -v sqlite3 >/dev/null; then
  check "the row in SQLite" "$(sqlite3 "$root/proj/data/app.db" 'SELECT who, tone FROM greetings')" "ops|cold"
fi
last=$(in_root /usr/bin/hoist -C /proj --json history -n 1)
contains "journal of the run" "$last" '"playbook":"greet"'
contains "journal of the run" "$last" '"status":"ok"'
stat -c '%a' "$root/proj/.hoist/state.db" | grep -qx 600 || fail "state.db is not 0600"

# --- hoist(1)
man1=$root/usr/share/man/man1/hoist.1.gz
page=$(zcat "$man1")
for macro in '.TH HOIST 1' '.SH NAME' '.SH SYNOPSIS' '.SH DESCRIPTION' '.SH OPTIONS' '.SH COMMANDS' '.SH EXIT STATUS'; do
  grep -q "^$macro" <<<"$page" || fail "hoist(1) has no '$macro'"
done
rendered=$(MANWIDTH=80 man --warnings -l "$man1" 2>"$tmp/man.err")
[ -s "$tmp/man.err" ] && fail "man -l warns: $(cat "$tmp/man.err")"
contains "man -l" "$rendered" "hoist run [options] PLAYBOOK"
contains "man -l" "$rendered" "hoist lock release [options]"
contains "man -l" "$rendered" "--project TEXT"
contains "man -l" "$rendered" "4      lease held"
case "$rendered" in *"hoist man"*) fail "man -l: the hidden man command is listed" ;; esac
awk 'length > 80 { bad = 1 } END { exit bad }' <<<"$rendered" || fail "man -l: lines wider than MANWIDTH=80"

# --- bash completion, in the project, with the unpacked hoist first on PATH
complete_in() {  # complete_in DIR WORD... (the last word is the one being completed)
  local dir=$1
  shift
  (cd "$dir" && PATH=$root/usr/bin:$PATH bash --norc -c '
    source "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
    _hoist
    [ ${#COMPREPLY[@]} -eq 0 ] || printf "%s\n" "${COMPREPLY[@]}" | sort -u | tr "\n" " "' _ "$root/usr/share/bash-completion/completions/hoist" "$@")
}
complete_bash() { complete_in "$root/proj" "$@"; }
check "hoist mi<TAB>" "$(complete_bash hoist mi)" "migrate "
contains "hoist <TAB>" "$(complete_bash hoist '')" "greet "
contains "hoist <TAB>" "$(complete_bash hoist '')" "completions "
case "$(complete_bash hoist '')" in *"man "*) fail "hoist <TAB> offers the hidden man command" ;; esac
check "hoist lock <TAB>" "$(complete_bash hoist lock '')" "release status "
check "hoist completions <TAB>" "$(complete_bash hoist completions '')" "bash zsh "
check "hoist run --sa<TAB>" "$(complete_bash hoist run --sa)" "--sandbox --sandbox-db "
check "hoist run gr<TAB>" "$(complete_bash hoist run gr)" "greet "
check "hoist greet -e <TAB>" "$(complete_bash hoist greet -e '')" "tone= who= "
check "hoist run greet -e w<TAB>" "$(complete_bash hoist run greet -e w)" "who= "
check "hoist greet -e tone=<TAB>" "$(complete_bash hoist greet -e tone =)" "cold warm "
check "hoist greet -e tone=w<TAB>" "$(complete_bash hoist greet -e tone = w)" "warm "
check "hoist migrate <TAB>" "$(complete_bash hoist migrate '')" "status "
check "hoist migrate -e ac<TAB> (the canned playbook)" "$(complete_bash hoist migrate -e ac)" "action= "
check "hoist doctor -e <TAB> (canned)" "$(complete_bash hoist doctor -e '')" "min_free_gib= tools= "
check "hoist -C PROJECT greet -e <TAB> elsewhere" "$(complete_in "$tmp" hoist -C "$root/proj" greet -e '')" "tone= who= "
check "hoist greet -e <TAB> outside the project" "$(complete_in "$tmp" hoist greet -e '')" ""

shellcheck -s bash "$root/usr/share/bash-completion/completions/hoist" >&2 || fail "shellcheck: the bash completion has problems"

# --- zsh completion: its syntax, and the helpers it shares with bash
zcomp=$root/usr/share/zsh/vendor-completions/_hoist
zsh -n "$zcomp" || fail "the zsh completion has a syntax error"
got=$(cd "$root/proj" && PATH=$root/usr/bin:$PATH zsh -f -c '
  eval "$(sed "\$d" "$1")"  # the functions, without the final call
  _hoist_params "" greet hoist | sort | tr "\n" " "
  _hoist_params tone greet hoist | sort | tr "\n" " "
  _hoist_playbooks hoist | grep -x migrate' _ "$zcomp")
check "zsh helpers" "$got" "tone= who= cold warm migrate"
# _hoist itself, outside a completion widget: compadd, _describe and compset
# replaced by ones that print what would be offered (no filtering by PREFIX).
complete_zsh() {  # complete_zsh PREFIX WORD... (the last word is the one being completed)
  (cd "$root/proj" && PATH=$root/usr/bin:$PATH zsh -f -c '
    compadd() {  # its locals must not shadow the caller'"'"'s array it names
      local -a _offered
      while (( $# )); do
        case $1 in (-a) _offered+=(${(P)2}); shift 2 ;; (-S) shift 2 ;; (--) shift ;; (*) _offered+=($1); shift ;; esac
      done
      print -l -- $_offered
    }
    _describe() { local -a _offered=(${(P)4}); print -l -- ${_offered%%:*} }
    compset() { PREFIX=${PREFIX#*=} }
    _files() { print FILES }
    _directories() { print DIRS }
    eval "$(sed "\$d" "$1")"
    PREFIX=$2; shift 2
    words=("$@"); CURRENT=$#
    _hoist | sort -u | tr "\n" " "' _ "$zcomp" "$@")
}
contains "zsh: hoist <TAB>" "$(complete_zsh '' hoist '')" "migrate "
contains "zsh: hoist <TAB>" "$(complete_zsh '' hoist '')" "greet "
check "zsh: hoist lock <TAB>" "$(complete_zsh '' hoist lock '')" "release status "
check "zsh: hoist greet -e <TAB>" "$(complete_zsh '' hoist greet -e '')" "tone= who= "
check "zsh: hoist greet -e tone=<TAB>" "$(complete_zsh tone= hoist greet -e tone=)" "cold warm "
contains "zsh: hoist migrate -e <TAB>" "$(complete_zsh "" hoist migrate -e "")" "action= "
check "zsh: hoist completions <TAB>" "$(complete_zsh '' hoist completions '')" "bash zsh "
contains "zsh: hoist run --<TAB>" "$(complete_zsh -- hoist run --)" "--sandbox-db "
check "zsh: hoist --params <TAB>" "$(complete_zsh '' hoist run greet --params '')" "FILES "

if [ "$fails" -gt 0 ]; then
  echo "$fails check(s) failed" >&2
  exit 1
fi
echo "package: every check passed ($deb)"
