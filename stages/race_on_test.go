//go:build race

package stages

// sync.Pool drops items at random under the race detector.
const raceEnabled = true
