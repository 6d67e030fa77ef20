#!/usr/bin/env escript
%% Item 6: {reply, R, State, hibernate} shrinks the process's heap; the state survives.
-module(hibernate).
-mode(compile).
-behaviour(gen_server).
-export([main/1, init/1, handle_call/3, handle_cast/2]).

main(_) ->
    {ok, Pid} = gen_server:start(?MODULE, [], []),
    gen_server:call(Pid, garbage),
    {memory, Before} = process_info(Pid, memory),
    hibernated = gen_server:call(Pid, hibernate),
    timer:sleep(20),
    {memory, After} = process_info(Pid, memory),
    io:format("memory shrank: ~p~n", [After < Before]),
    io:format("state kept: ~p~n", [gen_server:call(Pid, get)]).

init(_) -> {ok, 42}.
handle_call(garbage, _, S) -> _ = lists:seq(1, 100000), {reply, ok, S};
handle_call(hibernate, _, S) -> {reply, hibernated, S, hibernate};
handle_call(get, _, S) -> {reply, S, S}.
handle_cast(_, S) -> {noreply, S}.
