# boot.py: runs first after every reset. Keep it small and fast: load the profile, and decide whether
# the battery can carry a boot at all before anything heavy starts.
import gc

gc.collect()
