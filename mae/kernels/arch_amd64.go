package kernels

func registerArch() {}
