from codeclab.cli import app

app(prog_name="codeclab")
