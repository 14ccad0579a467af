//go:build !unix

package main

// processCPU is not measured here: the generator's CPU reads as zero.
func processCPU() float64 { return 0 }
