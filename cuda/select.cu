// placeholder (see api.h)
