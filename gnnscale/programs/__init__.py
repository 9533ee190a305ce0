"""The programs on top of the library: the ``gnnscale`` command (:mod:`.main`) and its
sub-commands, one module each, and the OGB benchmark runner (:mod:`.ogb_runner`). Each program
module imports at its top only what building its argument parser needs, and the library inside
the function that runs the command, so ``--help`` and a mistyped flag answer at once."""
