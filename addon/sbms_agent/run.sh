#!/usr/bin/with-contenv bashio
# Writes the agent's configuration from the add-on options (or from /config/sbms-agent.yaml
# when the user placed one in the add-on's config folder) and the Supervisor's MQTT service,
# then runs the agent.

if ! bashio::services.available "mqtt"; then
    bashio::exit.nok "No MQTT broker: install and start the Mosquitto broker add-on."
fi

# Passed through the environment, not the command line, where ps would show the password.
SBMS_MQTT_HOST="$(bashio::services mqtt "host")"
SBMS_MQTT_PORT="$(bashio::services mqtt "port")"
SBMS_MQTT_USERNAME="$(bashio::services mqtt "username")"
SBMS_MQTT_PASSWORD="$(bashio::services mqtt "password")"
SBMS_MQTT_SSL="$(bashio::services mqtt "ssl")"
export SBMS_MQTT_HOST SBMS_MQTT_PORT SBMS_MQTT_USERNAME SBMS_MQTT_PASSWORD SBMS_MQTT_SSL

/opt/sbms-agent/bin/python /usr/local/lib/sbms/addon_config.py \
    --options /data/options.json \
    --user-config /config/sbms-agent.yaml \
    --output /data/sbms-agent.yaml ||
    bashio::exit.nok "Could not write the agent configuration (see the lines above)."
unset SBMS_MQTT_PASSWORD

bashio::log.info "Starting $(/opt/sbms-agent/bin/sbms-agent --version)"
exec /opt/sbms-agent/bin/sbms-agent --config /data/sbms-agent.yaml --quiet \
    --log-level "$(bashio::config 'log_level')"
