from emovid.cli import run

run()
