#!/usr/bin/env bash
# Makes what a production broker and its clients need to prove who they are,
# with openssl only (Debian 12):
#   OUT/ca.crt, OUT/ca.key        a small CA (keep ca.key offline once done)
#   OUT/broker.crt, broker.key    the broker's server certificate (CN and SAN: --host)
#   OUT/ders/ID.crt, ID.key       one client certificate per DER, CN = its der_id
#                                 (mosquitto's use_identity_as_username makes it the user name)
#   OUT/clients/NAME.crt, .key    one per role user (aggregator, operators, dispatcher)
#   OUT/passwd                    the plugin's password file: a salted PBKDF2-SHA512 "$7$" hash
#                                 per user (mosquitto_passwd's format), for every role user and,
#                                 with --der-passwords, every DER
#   OUT/passwords.txt             the passwords made here, "user password" (mode 600): hand
#                                 each to its owner, then delete the file
# Running it again keeps the CA and every key and certificate already there
# and adds the new ones; passwords are made anew each time.
#
#   deploy/production/make-credentials.sh OUT --ders ID,ID,... [--host NAME]
#       [--aggregator NAME] [--operators NAME,...] [--dispatcher NAME]
#       [--der-passwords] [--days N] [--iterations N]
set -euo pipefail

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
fail() { echo "make-credentials.sh: $*" >&2; exit 2; }

[ $# -ge 1 ] || { usage; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; -*) fail "the first argument is the output directory" ;; esac
OUT=$1; shift
DERS=""; HOST=localhost; AGGREGATOR=aggregator; OPERATORS=operator; DISPATCHER=utility
DER_PASSWORDS=0; DAYS=825; ITERATIONS=20000
while [ $# -gt 0 ]; do
  case "$1" in
    --ders) DERS=${2:?--ders needs a value}; shift ;;
    --host) HOST=${2:?--host needs a value}; shift ;;
    --aggregator) AGGREGATOR=${2:?}; shift ;;
    --operators) OPERATORS=${2:?}; shift ;;
    --dispatcher) DISPATCHER=${2:?}; shift ;;
    --der-passwords) DER_PASSWORDS=1 ;;
    --days) DAYS=${2:?}; shift ;;
    --iterations) ITERATIONS=${2:?}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) fail "$1: unknown argument (see --help)" ;;
  esac
  shift
done
[[ "$DAYS" =~ ^[0-9]{1,5}$ ]] && ((DAYS >= 1)) || fail "--days '$DAYS' must be a whole number from 1 to 99999"
[[ "$ITERATIONS" =~ ^[0-9]{1,7}$ ]] && ((ITERATIONS >= 1000)) ||
  fail "--iterations '$ITERATIONS' must be a whole number from 1000 to 9999999"
[[ "$HOST" =~ ^[A-Za-z0-9.-]{1,253}$ ]] || fail "--host '$HOST' must be a host name"
ID_RULE='^[A-Za-z0-9_-]{1,64}$'
IFS=, read -r -a DER_LIST <<< "$DERS"
IFS=, read -r -a OPERATOR_LIST <<< "$OPERATORS"
ROLE_USERS=("$AGGREGATOR" "${OPERATOR_LIST[@]}" "$DISPATCHER")
[ ${#DER_LIST[@]} -gt 0 ] || fail "--ders: at least one der_id is required"
for id in "${DER_LIST[@]}" "${ROLE_USERS[@]}"; do
  [[ "$id" =~ $ID_RULE ]] || fail "'$id' does not match [A-Za-z0-9_-]{1,64}"
done

mkdir -p "$OUT/ders" "$OUT/clients"
chmod 700 "$OUT"
cd "$OUT"

if [ ! -f ca.key ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
    -out ca.crt -days "$DAYS" -subj "/O=DERMS/CN=DERMS broker CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
  chmod 600 ca.key
  echo "made the CA: $OUT/ca.crt"
fi

# KEY CRT CN EXTENSIONS: a key and a certificate signed by the CA, unless there.
issue() {
  [ -f "$2" ] && return 0
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$1" \
    -out "$2.csr" -subj "/O=DERMS/CN=$3" 2>/dev/null
  printf '%s\n' "$4" > "$2.ext"
  openssl x509 -req -in "$2.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$DAYS" \
    -extfile "$2.ext" -out "$2" 2>/dev/null
  rm -f "$2.csr" "$2.ext"
  chmod 600 "$1"
}
issue broker.key broker.crt "$HOST" \
  "subjectAltName=DNS:$HOST$([ "$HOST" = localhost ] && echo ',IP:127.0.0.1')
extendedKeyUsage=serverAuth"
for id in "${DER_LIST[@]}"; do
  issue "ders/$id.key" "ders/$id.crt" "$id" "extendedKeyUsage=clientAuth"
done
for user in "${ROLE_USERS[@]}"; do
  issue "clients/$user.key" "clients/$user.crt" "$user" "extendedKeyUsage=clientAuth"
done

# USER PASSWORD: a mosquitto_passwd "$7$" line (PBKDF2-HMAC-SHA512, 12-byte salt).
hash_line() {
  local salt hash
  salt=$(openssl rand -hex 12)
  hash=$(openssl kdf -keylen 64 -kdfopt digest:SHA512 -kdfopt "pass:$2" -kdfopt "hexsalt:$salt" \
    -kdfopt "iter:$ITERATIONS" -binary PBKDF2 | base64 -w0)
  printf '%s:$7$%s$%s$%s\n' "$1" "$ITERATIONS" "$(printf '%s' "$salt" | xxd_r | base64 -w0)" "$hash"
}
xxd_r() { sed 's/../\\x&/g' | xargs -0 printf '%b'; }  # hex to bytes without xxd
password() { openssl rand -base64 18 | tr '+/' '-_'; }

umask 077
: > passwd.new
: > passwords.txt
users=("${ROLE_USERS[@]}")
[ "$DER_PASSWORDS" -eq 1 ] && users+=("${DER_LIST[@]}")
for user in "${users[@]}"; do
  pw=$(password)
  hash_line "$user" "$pw" >> passwd.new
  printf '%s %s\n' "$user" "$pw" >> passwords.txt
done
mv passwd.new passwd
echo "made $OUT/passwd (${#users[@]} users, $ITERATIONS PBKDF2 rounds) and $OUT/passwords.txt"
echo "certificates: $OUT/broker.crt (CN $HOST), ${#DER_LIST[@]} in $OUT/ders/, ${#ROLE_USERS[@]} in $OUT/clients/"
