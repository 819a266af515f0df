"""The checking layer between the public functions and the kernels: argument
validation done once in Python (``validation``) and the array layouts the
kernels read (``layout``)."""
