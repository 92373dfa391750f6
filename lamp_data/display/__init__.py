"""Looking at data: one episode's frames over its reward curves (:mod:`.view`), a dataset's
browsable page (:mod:`.browse`), the scripted expert's showcase GIF (:mod:`.showcase`), and the
headless browser that checks such pages (:mod:`.headless`)."""
