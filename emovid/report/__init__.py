"""Looking at results: timelines and summaries, the HTML report, annotated videos."""
