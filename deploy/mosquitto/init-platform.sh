#!/bin/sh
# Broker-side setup for Kizuna on Mosquitto with dynamic security, in two idempotent steps.
#
# 1. Before the broker first starts: the dynsec file with only the Kizuna administrator.
#    (docker-compose's mosquitto-init service does this step with the same command.)
# 2. Once the broker is up: one client and one role per platform service, so ingest,
#    the API (commands, desired state) and notify never share a credential with each other
#    or with any device. Devices get their own clients when they are provisioned.
#
# Needs: KIZUNA_DEVICES__DYNSEC_ADMIN_USERNAME / _PASSWORD, KIZUNA_MQTT_URL (host:port of the
# broker), and KIZUNA_MQTT_INGEST_PASSWORD, KIZUNA_MQTT_DEVICES_PASSWORD,
# KIZUNA_MQTT_NOTIFY_PASSWORD for the services to create.
set -eu

DYNSEC_FILE="${DYNSEC_FILE:-/var/lib/mosquitto/dynamic-security.json}"
ADMIN_USER="${KIZUNA_DEVICES__DYNSEC_ADMIN_USERNAME:-kizuna-admin}"

case "${1:-}" in
  init-file)
    if [ -f "$DYNSEC_FILE" ]; then
      echo "dynsec file exists: $DYNSEC_FILE"
    else
      mosquitto_ctrl dynsec init "$DYNSEC_FILE" "$ADMIN_USER" \
        "${KIZUNA_DEVICES__DYNSEC_ADMIN_PASSWORD:?set KIZUNA_DEVICES__DYNSEC_ADMIN_PASSWORD}"
    fi
    ;;
  services)
    # Each service then connects with mqtt://kizuna-<service>:<password>@broker:1883.
    KIZUNA_DEVICES__BROKER_AUTH=mosquitto-dynsec kizuna devices broker-services
    ;;
  *)
    echo "usage: $0 init-file | services" >&2
    exit 2
    ;;
esac
