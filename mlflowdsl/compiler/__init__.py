"""The compiler: parse -> resolve -> typecheck -> graph -> lint -> lower to ``ir.Plan`` (see ``api``)."""
