"""What a run writes for people: tables, plots, the experiment's and the loop's reports."""
