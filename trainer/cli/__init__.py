"""The trainer's command line: one module per command, each `add_parser(commands)` (which sets
`func`) plus `run(args)`, which only turns the parsed arguments into a library call."""
