# CPython stand-in for MicroPython's ustruct (umqtt.simple imports the u-name).
from struct import *  # noqa: F401,F403
