package atocore

import "github.com/google/uuid"

// idSpace is the namespace of the event ids the importer derives from source rows.
var idSpace = uuid.MustParse("5d0b6c1e-8f43-4e7a-9a55-2f1c0a7e4b19")

// eventID is the id of the event made from the source row named by parts (a table, a row id
// and, for a row that gives several events, which one): the same row gives the same id on
// every run, so a second import finds its events already in the ledger.
func eventID(parts ...string) string {
	name := ""
	for i, p := range parts {
		if i > 0 {
			name += "\x00"
		}
		name += p
	}
	return uuid.NewSHA1(idSpace, []byte(name)).String()
}
