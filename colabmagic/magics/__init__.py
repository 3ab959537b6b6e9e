"""IPython magics: parse the line, call a service, return a value object."""
