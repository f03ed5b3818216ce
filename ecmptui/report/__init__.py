"""Reports people look at: self-contained HTML pages (inline CSS and SVG charts, no script,
no fetch) of a drill's scenarios and of the dashboard's timeline, built with ElementTree."""
