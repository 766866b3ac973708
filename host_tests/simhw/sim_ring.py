# A fixed-size byte FIFO for the simulated parts (MicroPython subset; never deployed): the UART's FIFOs
# (sim_uart) and the printer's receive buffer (sim_printer). MicroPython's bytearray cannot delete items,
# so a head index and a count over a preallocated buffer, no slicing tricks. Overflow is the caller's
# business (each part models its own: a UART write blocks, a printer drops and counts).


class Ring:
    def __init__(self, cap):
        self.buf = bytearray(cap)
        self.cap = cap
        self.head = 0
        self.n = 0

    def __len__(self):
        return self.n

    def free(self):
        return self.cap - self.n

    def clear(self):
        self.head = 0
        self.n = 0

    def put(self, b):
        self.buf[(self.head + self.n) % self.cap] = b
        self.n += 1

    def put_from(self, mv, start, k):
        for i in range(start, start + k):
            self.put(mv[i])

    def get(self):
        b = self.buf[self.head]
        self.head = (self.head + 1) % self.cap
        self.n -= 1
        return b

    def peek(self, i):
        return self.buf[(self.head + i) % self.cap]

    def take(self, k):
        out = bytearray(k)
        for i in range(k):
            out[i] = self.get()
        return bytes(out)

    def index(self, byte):
        for i in range(self.n):
            if self.peek(i) == byte:
                return i
        return -1
