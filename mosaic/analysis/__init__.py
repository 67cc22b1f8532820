"""Reading results: SQL views, the legacy sqlite layout, plots and reports."""
