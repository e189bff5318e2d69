"""End-to-end tests of the lab in JupyterLab, in headless Chromium (Playwright)."""
