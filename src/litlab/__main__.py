from litlab.cli import command

command()
