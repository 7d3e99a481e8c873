"""A whole class at once: the LMS download layouts (roster), grading them in parallel or on Dask
(batch), the gradebook and summary, and the feedback pages."""
