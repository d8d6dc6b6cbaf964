from mis.cli import app

app(prog_name="mis")
