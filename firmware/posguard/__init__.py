# posguard: power-fail-safe POS firmware for battery-powered ESP32 terminals with a thermal printer.
VERSION = "0.1.0"
