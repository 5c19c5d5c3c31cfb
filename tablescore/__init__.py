"""The ``tablescore`` command: the layer above ``scorer``, ``exporters`` and ``conformance``
that assembles their subcommands into one parser (:mod:`tablescore.cli`) and runs the demo
(:mod:`tablescore.demo`). Nothing below imports it."""
