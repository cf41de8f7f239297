"""One module per subcommand: ``add_arguments(parser, name)`` and ``run(args, options)``."""
