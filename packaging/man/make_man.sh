#!/usr/bin/env bash
# Writes ferry's manual pages into OUTDIR, gzipped as Debian wants them:
# ferry.1.gz, and ferry-COMMAND.1.gz for each subcommand, each made of the
# command's --help (so they never disagree with it), with a few words on the
# services for the server's and the worker's.
# Usage: make_man.sh FERRY OUTDIR VERSION
set -euo pipefail
ferry=$1 out=$2 version=$3
mkdir -p "$out"
rm -f "$out"/*.1.gz

# Text as roff: a backslash is \e, a line starting with . or ' stays text,
# and - is a minus that can be copied into a shell.
roff() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/" -e 's/-/\\-/g'; }

# page NAME SUMMARY USAGE HELP [EXTRA ROFF]
page() {
  local name=$1 summary=$2 usage=$3 help=$4 extra=${5:-}
  {
    printf '.TH %s 1 "" "ferry %s" "User Commands"\n' "$(tr a-z A-Z <<< "$name")" "$version"
    printf '.SH NAME\n%s \\- %s\n' "$name" "$(roff <<< "$summary")"
    printf '.SH SYNOPSIS\n.B %s\n' "$(roff <<< "$usage")"
    printf '.SH DESCRIPTION\n.nf\n%s\n.fi\n' "$(roff <<< "$help")"
    printf '%s' "$extra"
    if [[ $name == ferry ]]; then
      printf '.SH SEE ALSO\n%s\n' "$(sed 's/$/(1)/' <<< "$commands" | sed 's/^/ferry\\-/' | paste -sd, |
        sed 's/,/, /g')"
    else
      printf '.SH SEE ALSO\nferry(1)\n'
    fi
  } | gzip -9n > "$out/$name.1.gz"
}

service_page() {  # the words on a unit: UNIT SETTINGS-FILE
  printf '.SH SERVICE\nAs a systemd service: \\fB%s\\fR. Its settings (environment variables) are read from \\fI%s\\fR; the token is the first line of \\fI/etc/ferry/token\\fR, which the unit passes as a credential. Logs go to the journal; \\fBFERRY_LOG_FORMAT=json\\fR makes them one JSON object per line.\n' "$1" "$2"
}

main_help=$("$ferry" --help)
commands=$(sed -n '/^Subcommands:/,$p' <<< "$main_help" | tail -n +2 | awk 'NF {print $1}')
page ferry "$(head -1 <<< "$main_help" | sed 's/^ferry: //; s/\.$//')" "ferry COMMAND [OPTIONS]" \
  "$main_help"
for command in $commands; do
  summary=$(sed -n "s/^  $command  *//p" <<< "$main_help" | head -1)
  extra=
  case $command in
    server) extra=$(service_page "ferry-server.service" "/etc/ferry/server.env") ;;
    worker) extra=$(service_page "ferry-worker@INSTANCE.service" \
      "/etc/ferry/worker.env and /etc/ferry/worker-INSTANCE.env") ;;
  esac
  page "ferry-$command" "$summary" "ferry $command [OPTIONS]" "$("$ferry" "$command" --help)" \
    "$extra${extra:+
}"
done
