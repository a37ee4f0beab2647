module github.com/tickwire/tickwire/bench/loadgen

go 1.24
