# Simulated `esp32` module (MicroPython subset; never deployed). Partition follows the documented
# MicroPython API (docs/library/esp32.rst, ports/esp32/esp32_partition.c) on top of sim_flash.NorFlash
# partitions registered on the current simulated board (sim_board.current.partitions[label]).
import sim_board
import sim_flash

WAKEUP_ALL_LOW = False
WAKEUP_ANY_HIGH = True

_NATIVE_BLOCK = 4096  # the ESP32 flash erase unit (docs/reference/storage.md)
_APP_LABEL = "factory"
_APP_SIZE = 0x1F0000  # MicroPython's stock ESP32 app partition size
_FIRST_ADDR = 0x9000  # partitions follow the partition table (0x8000) in the stock layout


def _board():
    b = sim_board.current
    if b is None:
        raise OSError("no simulated board is powered (sim_board.current is None)")
    return b


def _flash(label):
    b = _board()
    f = b.partitions.get(label)
    if f is None and label == _APP_LABEL:
        # The running app partition: sparse, so it costs no RAM until written.
        f = sim_flash.NorFlash(_APP_SIZE, label=_APP_LABEL, ptype=0, subtype=0)
        b.partitions[_APP_LABEL] = f
    return f


def _addr_of(label):
    addr = _FIRST_ADDR
    for name, f in _board().partitions.items():
        if name == label:
            return addr
        addr += f.size
    return addr


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=4096):
        if id == Partition.BOOT or id == Partition.RUNNING:
            id = _APP_LABEL
        if not isinstance(id, str):
            raise TypeError("Partition id must be a label or Partition.BOOT/RUNNING")
        f = _flash(id)
        if f is None:
            raise ValueError("partition not found")
        if block_size <= 0 or block_size & (block_size - 1) or block_size > _NATIVE_BLOCK:
            raise ValueError("invalid block size")
        self._label = id
        self._flash = f
        self._bs = block_size

    @staticmethod
    def find(type=0, subtype=0xFF, label=None, block_size=4096):
        out = []
        for name, f in _board().partitions.items():
            if f.ptype != type:
                continue
            if subtype != 0xFF and f.subtype != subtype:
                continue
            if label is not None and name != label:
                continue
            out.append(Partition(name, block_size))
        return out

    def info(self):
        f = self._flash
        return (f.ptype, f.subtype, _addr_of(self._label), f.size, self._label, False)

    def readblocks(self, block_num, buf, offset=0):
        self._flash.read(block_num * self._bs + offset, buf)

    def writeblocks(self, block_num, buf, offset=None):
        f = self._flash
        addr = block_num * self._bs
        if offset is not None:
            # Extended form: program only, never erase (storage.md: use this for the journal).
            f.program(addr + offset, buf)
            return
        n = len(buf)
        if self._bs == _NATIVE_BLOCK:
            for s in range(addr // _NATIVE_BLOCK, (addr + n + _NATIVE_BLOCK - 1) // _NATIVE_BLOCK):
                f.erase_sector(s)
            f.program(addr, buf)
            return
        # block_size < 4096: read the sector, erase it, write it back with the new blocks in it,
        # like esp32_partition.c does with its sector cache.
        s = addr // _NATIVE_BLOCK
        cache = bytearray(_NATIVE_BLOCK)
        f.read(s * _NATIVE_BLOCK, cache)
        off = addr - s * _NATIVE_BLOCK
        cache[off : off + n] = buf
        f.erase_sector(s)
        f.program(s * _NATIVE_BLOCK, cache)

    def ioctl(self, cmd, arg):
        if cmd in (sim_flash.IOCTL_INIT, sim_flash.IOCTL_DEINIT, sim_flash.IOCTL_SYNC):
            return 0
        if cmd == sim_flash.IOCTL_BLOCK_COUNT:
            return self._flash.size // self._bs
        if cmd == sim_flash.IOCTL_BLOCK_SIZE:
            return self._bs
        if cmd == sim_flash.IOCTL_BLOCK_ERASE:  # native 4 KiB blocks only
            if self._bs != _NATIVE_BLOCK:
                return -22  # -EINVAL, as esp32_partition.c answers for small blocks
            self._flash.erase_sector(arg)
            return 0
        return None

    def set_boot(self):
        pass

    def get_next_update(self):
        raise OSError("no OTA partitions in the simulated table")

    @staticmethod
    def mark_app_valid_cancel_rollback():
        pass

    def __repr__(self):
        i = self.info()
        return "<Partition type=%d, subtype=%d, address=%d, size=%d, label=%s, encrypted=%d>" % i


def wake_on_ext0(pin, level):
    """Deep-sleep wake on one RTC pin; sim_board.Board._deep_sleep watches it."""
    b = _board()
    if pin is None:
        b.wake_ext0 = None
        return
    pid = getattr(pin, "_id", pin)
    b.wake_ext0 = (pid, 1 if level else 0)


def _chip():
    return _board().profile.get("mcu", "esp32")


def mcu_temperature():
    """The calibrated internal sensor in whole degrees C. ports/esp32/modesp32.c (lines 231-249, 337-341)
    builds it only for targets other than the original ESP32: there the attribute does not exist, which
    the simulator shows as the AttributeError a call on the port would raise."""
    if _chip() == "esp32":
        raise AttributeError("'module' object has no attribute 'mcu_temperature'")
    return int(round(_board().mcu_temp_c))


def raw_temperature():
    """The original ESP32's raw sensor: modesp32.c (lines 215-228) returns the 8-bit TSENS_OUT register
    field, uncalibrated, not a temperature in any unit; on many chips it reads a stuck 128. The simulated
    board's `raw_temp_reg` (default 128) is that register. Other targets have no raw_temperature."""
    if _chip() != "esp32":
        raise AttributeError("'module' object has no attribute 'raw_temperature'")
    return getattr(_board(), "raw_temp_reg", 128)
