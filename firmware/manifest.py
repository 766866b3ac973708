# ruff: noqa: F821  (include/package are defined by MicroPython's manifestfile.py, which executes this file)
# Frozen-firmware manifest: bakes the posguard package into a custom MicroPython image, so the
# bytecode runs from flash (no .mpy on the filesystem, less RAM at import, nothing for a user to delete).
#
# Building it needs ESP-IDF and the MicroPython source tree; it is not part of `make test` / CI:
#   cd micropython/ports/esp32
#   make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/posguard/firmware/manifest.py
#   esptool --port PORT write-flash 0x1000 build-ESP32_GENERIC/firmware.bin   (ESP32; 0x0 on S3)
# then `make provision PORT=...` (journal partition) and `posguard deploy --frozen`, which copies only
# board.json, boot.py, main.py and data/ (a posguard/ folder on the filesystem comes before .frozen on
# sys.path and would shadow the frozen package: deploy --frozen removes one a plain deploy left).
#
# This file is read by MicroPython's tools/manifestfile.py, not imported: include(), package() and
# module() are provided there. Paths are relative to this file.

# The port's own frozen modules (asyncio, _boot.py with the filesystem mount, inisetup, ...).
include("$(PORT_DIR)/boards/manifest.py")

# Telemetry's MQTT client (posguard/mqtt_link.py), from micropython-lib: a dependency, not a copy.
require("umqtt.simple")

# firmware/posguard/**.py as the package `posguard`, compiled with -O2 like `posguard deploy` does.
# Data files (firmware/data/*.bin) are not Python and cannot be frozen this way: they stay on the
# filesystem in /data, beside the package, never inside a posguard/ folder (posguard/gb.py data_path).
package("posguard", opt=2)
