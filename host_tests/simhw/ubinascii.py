# CPython stand-in for MicroPython's ubinascii (umqtt.simple imports the u-name).
from binascii import *  # noqa: F401,F403
