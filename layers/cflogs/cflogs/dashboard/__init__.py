"""The analytics dashboard: rollups kept by ingest and stitch (rollups), the
figures of each view (queries), and the web app serving them (app)."""
