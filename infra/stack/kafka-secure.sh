# shellcheck shell=bash
# The opt-in secured Kafka of the local stack, sourced by infra/stack.sh (it uses the helpers of
# lib.sh and kafka.sh: launch, wait_ready, our_pid, ensure_port_free, find_java, fetch_kafka_libs, ...).
#
# A SECOND single-node KRaft broker, beside the plain one on 19092 (which stays as it is):
#   - clients: SASL_SSL on 127.0.0.1:19094, SCRAM-SHA-512, user "tally";
#   - controller: SSL on 127.0.0.1:19095 (SCRAM cannot guard a KRaft controller listener: the
#     credentials live in the metadata log the controller serves);
#   - inter-broker: the same SASL_SSL listener as user "broker".
# Made once under .local/kafka-secure (git-ignored, mode 700): a CA and a broker certificate for
# 127.0.0.1/localhost made with the JDK's keytool (PKCS12, the CA also as PEM for kafkajs), the
# generated passwords (secrets.env, tally.password; never printed), the data directory, and
# client.env: the TALLY_* settings a client needs, the password by file, not by value.

SECURE_KAFKA_PORT=19094
SECURE_KAFKA_CONTROLLER_PORT=19095
SECURE_KAFKA_USER=tally
SECURE_KAFKA_BROKER_USER=broker
SECURE_KAFKA_MECHANISM=SCRAM-SHA-512
# The CA outlives broker certificates; 825 days is the longest server validity clients accept.
SECURE_CA_VALIDITY_DAYS=3650
SECURE_CERT_VALIDITY_DAYS=825

SECURE_KAFKA_HOME="$LOCAL/kafka-secure"
SECURE_KAFKA_DATA="$SECURE_KAFKA_HOME/data"
SECURE_KAFKA_PROPS="$SECURE_KAFKA_HOME/server.properties"
SECURE_TLS="$SECURE_KAFKA_HOME/tls"
SECURE_CA_PEM="$SECURE_TLS/ca.pem"
SECURE_SECRETS="$SECURE_KAFKA_HOME/secrets.env"
SECURE_TALLY_PASSWORD_FILE="$SECURE_KAFKA_HOME/tally.password"
SECURE_CLIENT_ENV="$SECURE_KAFKA_HOME/client.env"

# --- secrets -------------------------------------------------------------------------------

# 32 hex digits: no character that a properties file, a JAAS line or the storage tool's
# "[name=...,password=...]" syntax (split on ',' and '=') would read differently.
random_secret() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }

# Generated once; the files are readable by their owner only, and only ever read, never echoed.
ensure_secure_secrets() {
  (umask 077 && mkdir -p "$SECURE_KAFKA_HOME")
  chmod 700 "$SECURE_KAFKA_HOME"
  if [ ! -s "$SECURE_SECRETS" ]; then
    (
      umask 077
      {
        echo "# Generated once by infra/stack.sh for the local secured Kafka; never commit, never print."
        echo "SECURE_STORE_PASSWORD=$(random_secret)"
        echo "SECURE_CA_STORE_PASSWORD=$(random_secret)"
        echo "SECURE_BROKER_PASSWORD=$(random_secret)"
        echo "SECURE_TALLY_PASSWORD=$(random_secret)"
      } >"$SECURE_SECRETS.tmp"
      mv -f "$SECURE_SECRETS.tmp" "$SECURE_SECRETS"
    )
  fi
  # shellcheck source=/dev/null # written just above, NAME=hex lines only
  source "$SECURE_SECRETS"
  # The client's password on its own, for TALLY_KAFKA_SASL_PASSWORD_FILE (as an orchestrator
  # would mount a secret).
  (umask 077 && printf '%s\n' "$SECURE_TALLY_PASSWORD" >"$SECURE_TALLY_PASSWORD_FILE")
}

# --- certificates ----------------------------------------------------------------------------

# keytool sits beside the java that runs the broker; a JRE without it cannot make certificates.
keytool_of() {
  local java=$1 keytool
  keytool="$(dirname "$(readlink -f "$java")")/keytool"
  [ -x "$keytool" ] || keytool=$(command -v keytool || true)
  if [ -z "$keytool" ] || [ ! -x "$keytool" ]; then
    die "kafka-secure needs the JDK's keytool to make its certificates and found none beside $java or on PATH (apt-get install openjdk-17-jdk-headless)"
  fi
  echo "$keytool"
}

# Store passwords reach keytool through its environment (-storepass:env), never argv.
keytool_quiet() {
  local keytool=$1
  shift
  # umask: the stores hold private keys; readable by their owner only.
  (umask 077 && SECURE_STORE_PASSWORD=$SECURE_STORE_PASSWORD SECURE_CA_STORE_PASSWORD=$SECURE_CA_STORE_PASSWORD \
    "$keytool" "$@") >>"$(log_of kafka-secure)" 2>&1 ||
    fail_component kafka-secure "keytool $1 failed"
}

# A CA, and a broker certificate it signs for localhost and 127.0.0.1 (the name kafkajs checks
# is the broker's host as given: an IP, so the IP must be in the SAN). Made in a scratch folder
# and renamed, so that an interrupted run does not look complete.
make_secure_tls() {
  local keytool=$1 dir="$SECURE_TLS.partial" san="SAN=dns:localhost,ip:$HOST"
  [ -s "$SECURE_CA_PEM" ] && [ -s "$SECURE_TLS/broker.p12" ] && [ -s "$SECURE_TLS/truststore.p12" ] && return 0
  echo "stack: making a CA and a broker certificate in $SECURE_TLS with keytool (once)" >&2
  rm -rf "$dir" "$SECURE_TLS"
  (umask 077 && mkdir -p "$dir")
  keytool_quiet "$keytool" -genkeypair -alias ca -dname "CN=Tally local stack CA" \
    -keyalg RSA -keysize 2048 -validity "$SECURE_CA_VALIDITY_DAYS" \
    -ext bc:c=ca:true -ext KU:c=keyCertSign,cRLSign \
    -keystore "$dir/ca.p12" -storetype PKCS12 -storepass:env SECURE_CA_STORE_PASSWORD
  keytool_quiet "$keytool" -exportcert -rfc -alias ca -file "$dir/ca.pem" \
    -keystore "$dir/ca.p12" -storepass:env SECURE_CA_STORE_PASSWORD
  keytool_quiet "$keytool" -genkeypair -alias broker -dname "CN=localhost" \
    -keyalg RSA -keysize 2048 -validity "$SECURE_CERT_VALIDITY_DAYS" \
    -keystore "$dir/broker.p12" -storetype PKCS12 -storepass:env SECURE_STORE_PASSWORD
  keytool_quiet "$keytool" -certreq -alias broker -file "$dir/broker.csr" \
    -keystore "$dir/broker.p12" -storepass:env SECURE_STORE_PASSWORD
  keytool_quiet "$keytool" -gencert -alias ca -infile "$dir/broker.csr" -outfile "$dir/broker.pem" -rfc \
    -validity "$SECURE_CERT_VALIDITY_DAYS" -ext "$san" \
    -ext KU:c=digitalSignature,keyEncipherment -ext EKU=serverAuth,clientAuth \
    -keystore "$dir/ca.p12" -storepass:env SECURE_CA_STORE_PASSWORD
  # The chain goes in whole: the CA first, then the signed certificate replaces the self-signed one.
  keytool_quiet "$keytool" -importcert -noprompt -alias ca -file "$dir/ca.pem" \
    -keystore "$dir/broker.p12" -storepass:env SECURE_STORE_PASSWORD
  keytool_quiet "$keytool" -importcert -noprompt -alias broker -file "$dir/broker.pem" \
    -keystore "$dir/broker.p12" -storepass:env SECURE_STORE_PASSWORD
  # The broker is also a client of its own listeners (controller, inter-broker): it trusts the CA.
  keytool_quiet "$keytool" -importcert -noprompt -alias ca -file "$dir/ca.pem" \
    -keystore "$dir/truststore.p12" -storetype PKCS12 -storepass:env SECURE_STORE_PASSWORD
  rm -f "$dir/broker.csr"
  chmod 644 "$dir/ca.pem" # the CA certificate is public; the stores keep 600
  mv "$dir" "$SECURE_TLS"
}

# --- broker ------------------------------------------------------------------------------------

# Regenerated on every start (mode 600: it holds the store and broker passwords).
write_secure_kafka_properties() {
  (
    umask 077
    cat >"$SECURE_KAFKA_PROPS" <<EOF
# Written by infra/stack.sh (infra/stack/kafka-secure.sh) on every start; edits are lost.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$SECURE_KAFKA_CONTROLLER_PORT
listeners=SASL_SSL://$HOST:$SECURE_KAFKA_PORT,CONTROLLER://$HOST:$SECURE_KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_SSL://$HOST:$SECURE_KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL
sasl.enabled.mechanisms=$SECURE_KAFKA_MECHANISM
sasl.mechanism.inter.broker.protocol=$SECURE_KAFKA_MECHANISM
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$SECURE_KAFKA_BROKER_USER" password="$SECURE_BROKER_PASSWORD";
ssl.keystore.type=PKCS12
ssl.keystore.location=$SECURE_TLS/broker.p12
ssl.keystore.password=$SECURE_STORE_PASSWORD
ssl.key.password=$SECURE_STORE_PASSWORD
ssl.truststore.type=PKCS12
ssl.truststore.location=$SECURE_TLS/truststore.p12
ssl.truststore.password=$SECURE_STORE_PASSWORD
ssl.enabled.protocols=TLSv1.3,TLSv1.2
ssl.endpoint.identification.algorithm=https
ssl.client.auth=none
log.dirs=$SECURE_KAFKA_DATA
EOF
    single_node_kafka_properties >>"$SECURE_KAFKA_PROPS"
  )
}

# Formatted once, with both SCRAM users in the bootstrap metadata (KIP-900: the storage tool's
# --add-scram 'SCRAM-SHA-512=[name=...,password=...]', repeatable). The arguments go through a
# java @argfile (mode 600, removed after) so that no password shows in the process list.
format_secure_kafka_storage() {
  local java=$1 uuid argfile rc=0
  [ -f "$SECURE_KAFKA_DATA/meta.properties" ] && return 0
  echo "stack: formatting secured Kafka storage in $SECURE_KAFKA_DATA with SCRAM users (once)" >&2
  rm -rf "$SECURE_KAFKA_DATA"
  mkdir -p "$SECURE_KAFKA_DATA"
  # shellcheck disable=SC2046 # word splitting of the fixed JVM flags is intended
  uuid=$("$java" $(kafka_java_args) -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>>"$(log_of kafka-secure)" | tail -1)
  [ -n "$uuid" ] || fail_component kafka-secure "StorageTool random-uuid printed nothing"
  argfile="$SECURE_KAFKA_HOME/format.args"
  (
    umask 077
    printf '%s\n' kafka.tools.StorageTool format -t "$uuid" -c "$SECURE_KAFKA_PROPS" --standalone \
      --add-scram "$SECURE_KAFKA_MECHANISM=[name=$SECURE_KAFKA_BROKER_USER,password=$SECURE_BROKER_PASSWORD]" \
      --add-scram "$SECURE_KAFKA_MECHANISM=[name=$SECURE_KAFKA_USER,password=$SECURE_TALLY_PASSWORD]" \
      >"$argfile"
  )
  # shellcheck disable=SC2046
  "$java" $(kafka_java_args) -cp "$KAFKA_LIBS/*" "@$argfile" >>"$(log_of kafka-secure)" 2>&1 || rc=$?
  rm -f "$argfile"
  if [ "$rc" != 0 ]; then
    rm -rf "$SECURE_KAFKA_DATA" # half-formatted storage would be taken as done next time
    fail_component kafka-secure "StorageTool format --add-scram failed (exit $rc)"
  fi
}

# A real round trip through TLS, verified against our CA and the IP in the certificate: an
# ApiVersions v0 request, which a SASL listener answers before authentication. s_client runs as a
# coprocess so that the check ends as soon as the reply's first 8 bytes are in (fed by a pipe,
# s_client would wait for the broker to close the connection); its output goes through a file
# because a coprocess's descriptors do not reach a $(...) subshell.
secure_kafka_answers() {
  local reply="" probe_pid to_probe from_probe tmp
  [ -s "$SECURE_CA_PEM" ] || return 1
  tmp=$(mktemp "$RUN/kafka-secure-probe.XXXXXX")
  coproc TLS_PROBE {
    exec timeout 5 openssl s_client -connect "$HOST:$SECURE_KAFKA_PORT" -CAfile "$SECURE_CA_PEM" \
      -verify_return_error -verify_ip "$HOST" -quiet 2>/dev/null
  }
  probe_pid=$TLS_PROBE_PID
  from_probe=${TLS_PROBE[0]:-}
  to_probe=${TLS_PROBE[1]:-}
  # A probe that failed at once (connection refused) may already be reaped, its fds gone: the
  # group's stderr swallows bash's own "bad file descriptor" then, and the check just fails.
  if [ -n "$from_probe" ] && [ -n "$to_probe" ]; then
    {
      printf '\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x01\x00\x05tally' 1>&"$to_probe"
      head -c 8 <&"$from_probe" >"$tmp"
    } 2>/dev/null || true
  fi
  kill "$probe_pid" 2>/dev/null || true # timeout passes the signal on to s_client
  wait "$probe_pid" 2>/dev/null || true
  reply=$(od -An -tx1 "$tmp" | tr -d ' \n')
  rm -f "$tmp"
  [[ $reply =~ ^[0-9a-f]{8}00000001$ ]]
}

# The settings a Tally client needs for this broker; the password by file, as a mounted secret.
write_secure_client_env() {
  cat >"$SECURE_CLIENT_ENV.tmp" <<EOF
TALLY_KAFKA_BROKERS=$HOST:$SECURE_KAFKA_PORT
TALLY_KAFKA_SSL=true
TALLY_KAFKA_SSL_CA_FILE=$SECURE_CA_PEM
TALLY_KAFKA_SASL_MECHANISM=scram-sha-512
TALLY_KAFKA_SASL_USERNAME=$SECURE_KAFKA_USER
TALLY_KAFKA_SASL_PASSWORD_FILE=$SECURE_TALLY_PASSWORD_FILE
EOF
  mv -f "$SECURE_CLIENT_ENV.tmp" "$SECURE_CLIENT_ENV"
}

start_kafka_secure() {
  local pid java keytool started=$SECONDS
  if pid=$(our_pid kafka-secure); then
    wait_ready kafka-secure "$pid" "$KAFKA_READY_TIMEOUT_S" secure_kafka_answers
    write_secure_client_env
    say kafka-secure "already running  SASL_SSL $HOST:$SECURE_KAFKA_PORT (pid $pid)"
    return 0
  fi
  ensure_port_free kafka-secure "$SECURE_KAFKA_PORT"
  ensure_port_free kafka-secure "$SECURE_KAFKA_CONTROLLER_PORT"
  if pid=$(our_pid kafka-secure); then start_kafka_secure; return 0; fi # adopted
  command -v openssl >/dev/null || die "kafka-secure's readiness check needs openssl (apt-get install openssl)"
  java=$(find_java 17) ||
    die "kafka-secure needs a JDK >= 17 for Kafka $KAFKA_VERSION and its keytool (apt-get install openjdk-17-jdk-headless)"
  keytool=$(keytool_of "$java")
  fetch_kafka_libs
  ensure_secure_secrets
  make_secure_tls "$keytool"
  write_secure_kafka_properties
  format_secure_kafka_storage "$java"
  # shellcheck disable=SC2046
  launch kafka-secure "$java" -Xms256m -Xmx512m $(kafka_java_args) -cp "$KAFKA_LIBS/*" kafka.Kafka "$SECURE_KAFKA_PROPS"
  wait_ready kafka-secure "$LAUNCHED_PID" "$KAFKA_READY_TIMEOUT_S" secure_kafka_answers
  write_secure_client_env
  say kafka-secure "started  SASL_SSL $HOST:$SECURE_KAFKA_PORT (pid $LAUNCHED_PID, ready in $((SECONDS - started))s; client settings in ${SECURE_CLIENT_ENV#"$ROOT/"})"
}
