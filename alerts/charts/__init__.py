"""Notification charts: the series around an alert's crossing, drawn in the service (no browser, no extra
process to deploy). ``data.py`` decides what to draw from the store and the rules (:func:`chart_data`),
``bands.py`` computes what the rules judged against, ``model.py`` holds the result as plain picklable data,
``render.py`` draws it as a PNG with matplotlib (imported there only: without matplotlib the service runs,
without charts).
"""
