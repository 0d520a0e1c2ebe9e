/* devices/mqtt_codec.c — placeholder until the codec lands. */
typedef int fdl_mqtt_codec_placeholder;
