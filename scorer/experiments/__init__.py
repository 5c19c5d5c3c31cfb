"""A/B experiments: assignment and serving (the router, the exposure log) and their analysis
(``tablescore experiment report``)."""
