# main.py: load the board profile and run the terminal.
from posguard import app

app.main()
