"""Tools that drive the suite from outside, through its public HTTP APIs and `clock.ticks`: the
merchant simulator and its report (`flexchain simulate`). Not part of the runtime kernel: nothing in
the services imports this package."""
