"""The dashboard: server-rendered pages (FastAPI + Jinja2) and a JSON API (DESIGN.md section 7)."""
