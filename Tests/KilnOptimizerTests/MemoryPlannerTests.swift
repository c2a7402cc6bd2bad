import KilnRuntime
import Testing

/// The arena planner: buffers alive at the same time never overlap, and reuse makes the arena smaller than
/// one buffer per value on a chain.
@Suite struct MemoryPlannerTests {
    typealias Request = MemoryPlanner.Request

    func assertDisjoint(_ requests: [Request], _ plan: MemoryPlanner.Plan) {
        for i in requests.indices {
            #expect(plan.offsets[i] % 256 == 0)
            #expect(plan.offsets[i] + requests[i].bytes <= plan.arenaBytes)
            for j in requests.indices where j > i && requests[i].overlapsLifetime(requests[j]) {
                let a = plan.offsets[i]..<(plan.offsets[i] + max(requests[i].bytes, 1))
                let b = plan.offsets[j]..<(plan.offsets[j] + max(requests[j].bytes, 1))
                #expect(!a.overlaps(b), "requests \(i) and \(j) share bytes while both alive")
            }
        }
    }

    @Test func chainReusesMemory() {
        // x0 -> x1 -> ... -> x9, each read only by the next step.
        let requests = (0..<10).map { Request(bytes: 1000, first: $0, last: $0 + 1) }
        let plan = MemoryPlanner.plan(requests)
        assertDisjoint(requests, plan)
        #expect(plan.arenaBytes == 2 * 1024)
        #expect(plan.naiveBytes == 10 * 1024)
    }

    @Test(arguments: 0..<20) func randomLifetimesNeverOverlap(_ seed: Int) {
        var state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 &+ 1
        func next(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(n))
        }
        let requests = (0..<60).map { _ -> Request in
            let first = next(40)
            return Request(bytes: 1 + next(50_000), first: first, last: first + next(10))
        }
        let plan = MemoryPlanner.plan(requests)
        assertDisjoint(requests, plan)
        #expect(plan.arenaBytes <= plan.naiveBytes)
    }
}
